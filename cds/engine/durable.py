"""The one module that imports durable_rules, and the quirks it tames.

durable-rules 2.0.28 behaviours this adapter relies on or works around (each pinned by a test in
tests/engine/test_durable.py):

1. ``Host.__init__`` starts never-ending timer threads that dispatch queued actions from any
   session. They would race our synchronous calls (the C bindings have no locks), so ``_Host``
   disables them; we run actions ourselves, under one lock.
2. Asserting a batch in which any fact matches no rule raises ``MessageNotHandledException`` and
   drops the actions of the whole batch. Facts are asserted one at a time; "not handled" for one
   fact just means no rule wanted it.
3. A negated pattern (``none``) is decided when the positive fact arrives: a negating fact
   asserted afterwards does not retract the pending action. Facts of every type that appears
   under ``none`` are therefore asserted first, which makes results independent of fact order.
4. Two identical messages in one session raise ``MessageObservedException``: every fact gets an
   ``id``.
5. ``Ruleset.__init__`` deletes ``run`` from the definition it is given: definitions are
   deep-copied before registration.
6. An action that raises is swallowed into the session state as ``exception``: the state is read
   after every evaluation and an exception there becomes ``EngineError``.
7. Session state lives in the engine until deleted (a full state table raises MemoryError):
   every evaluation uses a fresh ``sid`` and deletes it in ``finally``.
8. ``delete_state`` crashes the process (SIGSEGV / double free) for a session in which no action
   ever ran — a fact that matched nothing, or a half-completed join. Every ruleset therefore has
   one more rule, matched by an end-of-evaluation fact asserted last, whose no-op action always
   runs.
9. The engine's JSON parser refuses a number with an exponent but no decimal point (``1e16``,
   ``5e-324``: what orjson and ``repr`` write for such floats), and after a refused assert the
   ``delete_state`` of quirk 8 crashes the process. Every float is written with a point before
   its exponent (``1.0e16``); non-finite values are left out like ``None``; integers beyond 64
   bits, which orjson refuses, are sent as floats.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import durable_rules_engine
import orjson
from durable import engine as durable_engine

from cds.errors import EngineError

# Quirk 8: the end-of-evaluation fact and the rule that always fires on it.
_END_FACT = {"t": "__end_of_evaluation"}
_END_RULE = "__end_of_evaluation"


@dataclass(frozen=True)
class Match:
    """One firing: the rule key ("KAP-CI-010#order") and the facts bound to its pattern names."""

    key: str
    facts: dict[str, dict[str, Any]]


class _Host(durable_engine.Host):  # type: ignore[misc]
    def __init__(self) -> None:
        self._actions: dict[str, Callable[[Any], None]] = {}
        super().__init__()

    def register_action(self, name: str, action: Callable[[Any], None]) -> None:
        self._actions[name] = action

    def get_action(self, action_name: str) -> Callable[[Any], None]:
        try:
            return self._actions[action_name]
        except KeyError:
            raise EngineError(f"unknown action {action_name!r}") from None

    def _run(self) -> None:
        """Quirk 1: no background dispatch threads."""


class DurableEngine:
    """Runs compiled rule sets: one durable ruleset per name (we use one per CDS hook)."""

    def __init__(
        self,
        rulesets: Mapping[str, Mapping[str, dict[str, Any]]],
        negated_types: Mapping[str, frozenset[str]],
    ) -> None:
        self._lock = threading.Lock()
        self._fired: list[Match] = []
        self._host = _Host()
        self._negated_first = dict(negated_types)
        self._names: set[str] = set()
        definitions: dict[str, dict[str, Any]] = {}
        for name, rules in rulesets.items():
            if not rules:
                continue  # durable rejects an empty ruleset; evaluating it fires nothing
            body = copy.deepcopy(dict(rules))  # quirk 5
            body[_END_RULE] = {"all": [{"end": {"t": _END_FACT["t"]}}]}
            for key, rule in body.items():
                # Actions are resolved by name through the host: the name is the rule key, so
                # a rule without a registered action fails here, at load.
                self._host.register_action(key, self._collector(key))
                rule["run"] = key
            definitions[name] = body
            self._names.add(name)
        if definitions:
            self._host.set_rulesets(definitions)

    def _collector(self, key: str) -> Callable[[Any], None]:
        def collect(c: Any) -> None:
            if key == _END_RULE:
                return
            bound = c._m if isinstance(c._m, dict) else {}
            self._fired.append(Match(key, {alias: _strip(f) for alias, f in bound.items()}))

        return collect

    def negated_types(self, ruleset: str) -> frozenset[str]:
        """Fact types some rule of ``ruleset`` negates ("none:")."""
        return self._negated_first.get(ruleset, frozenset())

    def run(self, ruleset: str, facts: Iterable[Mapping[str, Any]]) -> list[Match]:
        if ruleset not in self._names:
            return []  # no active rule listens to this hook
        ordered = self._order(ruleset, facts)
        with self._lock:
            return self._run_locked(ruleset, ordered)

    def _order(self, ruleset: str, facts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        negated = self.negated_types(ruleset)
        clean = [{k: v for k, v in f.items() if v is not None} for f in facts]
        first = [f for f in clean if f["t"] in negated]
        return first + [f for f in clean if f["t"] not in negated] + [dict(_END_FACT)]

    def _run_locked(self, ruleset: str, facts: list[dict[str, Any]]) -> list[Match]:
        rules = self._host.get_ruleset(ruleset)
        sid = uuid.uuid4().hex
        self._fired = []
        try:
            for index, fact in enumerate(facts):
                message = dict(fact, sid=sid, id=f"f{index}")  # quirk 4
                # Quirk 2: "not handled" only means no rule wanted this fact.
                with contextlib.suppress(durable_engine.MessageNotHandledException):
                    # Ruleset.assert_fact minus its json.dumps: orjson is several times faster.
                    result = durable_rules_engine.assert_fact(rules._handle, engine_json(message))
                    rules._handle_result(result, message)
            self._dispatch(rules)
            state = rules.get_state(sid)
            if "exception" in state:  # quirk 6
                raise EngineError("a rule action failed during evaluation")
            return list(self._fired)
        finally:
            rules.delete_state(sid)  # quirk 7
            self._fired = []

    def _dispatch(self, rules: Any) -> None:
        errors: list[BaseException] = []

        def done(error: BaseException | None, _state: Any) -> None:
            if error:
                errors.append(error)

        while True:
            started = durable_rules_engine.start_action(rules._handle)
            if not started:
                break
            state, message, handle = json.loads(started[0]), json.loads(started[1]), started[2]
            rules._flush_actions(state, {"message": message}, handle, done)
        if errors:
            raise EngineError("the rules engine could not complete an action")


_INT64_RANGE = range(-(2**63), 2**64)  # what orjson writes as an integer


def engine_json(message: Mapping[str, Any]) -> str:
    """``message`` as JSON text the engine parses (quirk 9)."""
    values = {k: _engine_value(v) for k, v in message.items()}
    return orjson.dumps({k: v for k, v in values.items() if v is not None}).decode()


def _engine_value(value: Any) -> Any:
    if isinstance(value, float):
        return _engine_float(value)
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64_RANGE:
        return _engine_float(float(value))
    if isinstance(value, list | tuple):
        return [_engine_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _engine_value(v) for k, v in value.items()}
    return value


def _engine_float(value: float) -> Any:
    if not math.isfinite(value):
        return None  # orjson would write null; the same as a field that is not there
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        return orjson.Fragment(f"{mantissa}.0e{exponent}".encode())
    return value


def _strip(fact: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fact.items() if k not in ("sid", "id")}
