"""In-process timings (no HTTP): each stage of the request path, median over many iterations.

Stages, in the order ``POST /cds-services/{id}`` runs them: ``parse`` (orjson + the CDS Hooks
request models, from bytes), ``triage``, ``gather`` (prefetch -> ``PatientData``), ``evaluate``
(``evaluator.evaluate``: plan, facts, engine, cards), ``audit`` (``record_evaluation``) and
``serialize`` (the cards body). ``evaluate`` is also broken down into ``facts``, ``engine`` and
``cards`` with the same calls ``RuleEvaluator.evaluate`` makes.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from bench.synthetic import SERVICE_ID
from cds.audit import open_store
from cds.config import Settings
from cds.evaluator import RuleEvaluator, build_evaluator
from cds.fhir.gather import gather
from cds.hooks.cards import CardsResponse
from cds.hooks.models import parse_call
from cds.hooks.registry import SERVICES_BY_ID
from cds.pipeline_types import AuditSink, PatientData

Json = dict[str, Any]
HOOK = SERVICES_BY_ID[SERVICE_ID].hook


@dataclass(frozen=True)
class Budget:
    """At most ``iterations`` runs of a stage, and at most ``seconds`` of them."""

    iterations: int
    seconds: float


Sample = tuple[float, float]  # (wall ms, CPU ms of this thread)


def summarize(samples: list[Sample]) -> dict[str, float | int | None]:
    """Wall-clock median/p95/min and the median CPU time of the measuring thread (which other
    processes on a busy machine do not inflate)."""
    if not samples:
        return {"median_ms": None, "p95_ms": None, "min_ms": None, "cpu_median_ms": None, "n": 0}
    ordered = sorted(wall for wall, _cpu in samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return {
        "median_ms": round(statistics.median(ordered), 4),
        "p95_ms": round(p95, 4),
        "min_ms": round(ordered[0], 4),
        "cpu_median_ms": round(statistics.median(cpu for _wall, cpu in samples), 4),
        "n": len(ordered),
    }


def _sample(wall_start: float, cpu_start: float) -> Sample:
    return ((time.perf_counter() - wall_start) * 1000, (time.thread_time() - cpu_start) * 1000)


def time_sync(fn: Callable[[], object], budget: Budget) -> list[Sample]:
    fn()  # warm-up: caches, lazy imports
    samples: list[Sample] = []
    deadline = time.perf_counter() + budget.seconds
    while len(samples) < budget.iterations and time.perf_counter() < deadline:
        wall, cpu = time.perf_counter(), time.thread_time()
        fn()
        samples.append(_sample(wall, cpu))
    return samples


async def _time_async(fn: Callable[[], Awaitable[object]], budget: Budget) -> list[Sample]:
    await fn()
    samples: list[Sample] = []
    deadline = time.perf_counter() + budget.seconds
    while len(samples) < budget.iterations and time.perf_counter() < deadline:
        wall, cpu = time.perf_counter(), time.thread_time()
        await fn()
        samples.append(_sample(wall, cpu))
    return samples


def time_async(fn: Callable[[], Awaitable[object]], budget: Budget) -> list[Sample]:
    return asyncio.run(_time_async(fn, budget))


@contextmanager
def bench_runtime() -> Iterator[tuple[Settings, RuleEvaluator, AuditSink]]:
    """Settings with the audit store in a temporary directory, the evaluator and the store."""
    with tempfile.TemporaryDirectory(prefix="kap-bench-") as tmp:
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite:///{Path(tmp) / 'audit.sqlite3'}",
            spool_dir=Path(tmp) / "spool",
            trusted_issuers=[],
        )
        evaluator = build_evaluator(settings)
        store = open_store(settings)
        gc.freeze()  # as the server does once its rules are loaded (cds.app)
        try:
            yield settings, evaluator, store
        finally:
            store.close()


def measure_cold(
    requests: list[Json], settings: Settings, evaluator: RuleEvaluator
) -> dict[str, Any]:
    """parse and evaluate, each request a patient never seen before (no cache can answer)."""
    parse: list[Sample] = []
    evaluate: list[Sample] = []
    for request in requests:
        body = orjson.dumps(request)
        wall, cpu = time.perf_counter(), time.thread_time()
        call = parse_call(body, HOOK)
        parse.append(_sample(wall, cpu))
        data = asyncio.run(gather(call.request, settings, context=call.context))
        now = datetime.now(UTC)
        wall, cpu = time.perf_counter(), time.thread_time()
        evaluator.evaluate(service_id=SERVICE_ID, context=call.context, data=data, now=now)
        evaluate.append(_sample(wall, cpu))
    return {"parse": summarize(parse), "evaluate": summarize(evaluate)}


def measure_stages(
    request: Json, settings: Settings, evaluator: RuleEvaluator, audit: AuditSink, budget: Budget
) -> dict[str, Any]:
    """Per-stage timings of one KAP request (see the module docstring)."""
    body = orjson.dumps(request)
    call = parse_call(body, HOOK)
    now = datetime.now(UTC)
    data = asyncio.run(gather(call.request, settings, context=call.context))
    evaluation = evaluator.evaluate(service_id=SERVICE_ID, context=call.context, data=data, now=now)

    def record() -> None:
        audit.record_evaluation(
            service_id=SERVICE_ID,
            hook=HOOK,
            hook_instance=call.request.hookInstance,
            patient_id=None,
            data=data,
            evaluation=evaluation,
            latency_ms=1.0,
        )

    stages = {
        "parse": time_sync(lambda: parse_call(body, HOOK), budget),
        "triage": time_sync(lambda: evaluator.triage(HOOK, call.context), budget),
        "gather": time_async(lambda: gather(call.request, settings, context=call.context), budget),
        "evaluate": time_sync(
            lambda: evaluator.evaluate(
                service_id=SERVICE_ID, context=call.context, data=data, now=now
            ),
            budget,
        ),
        "audit": time_sync(record, budget),
        "serialize": time_sync(
            lambda: orjson.dumps(CardsResponse(cards=evaluation.cards).to_json()), budget
        ),
    }
    result: dict[str, Any] = {name: summarize(samples) for name, samples in stages.items()}
    result["evaluate_breakdown"] = _evaluate_breakdown(evaluator, call.context, data, now, budget)
    result["request_bytes"] = len(body)
    result["cards"] = len(evaluation.cards)
    return result


def _evaluate_breakdown(
    evaluator: RuleEvaluator, context: Json, data: PatientData, now: datetime, budget: Budget
) -> dict[str, Any]:
    """facts (plan included), engine and cards, timed apart. Uses the evaluator's parts as
    ``RuleEvaluator.evaluate`` does; reports the error instead if those parts have moved."""
    try:
        from cds.cards.actions import ActionContext
        from cds.cards.render import CardContext, build_cards

        facts = evaluator.facts_for(SERVICE_ID, context, data, now)
        engine_name = HOOK.replace("-", "_")
        matches = evaluator.engine.run(engine_name, facts)
        action_ctx = CardContext(
            actions=ActionContext(patient_id=str(context.get("patientId", "")), t0=now),
            drug="ketamine",
            now=now,
            tz=evaluator.tz,
            near=True,
        )
        return {
            "facts": summarize(
                time_sync(lambda: evaluator.facts_for(SERVICE_ID, context, data, now), budget)
            ),
            "engine": summarize(
                time_sync(lambda: evaluator.engine.run(engine_name, facts), budget)
            ),
            "cards": summarize(
                time_sync(lambda: build_cards(matches, evaluator.ruleset, action_ctx), budget)
            ),
            "facts_posted": len(facts),
            "rules_matched": len(matches),
        }
    except Exception as exc:  # the benchmark must survive refactors of the domain
        return {"error": f"{type(exc).__name__}: {exc}"}


def measure_builders(request: Json, evaluator: RuleEvaluator, budget: Budget) -> dict[str, Any]:
    """CPU ms of each fact builder of ``cds.facts.build.BUILDERS``, each run alone on a fresh
    ``FactContext`` (so each pays its own R4B validations); reports the error if the domain's
    parts have moved."""
    try:
        from cds.facts.build import BUILDERS
        from cds.facts.plan import find_plan

        call = parse_call(orjson.dumps(request), HOOK)
        data = asyncio.run(gather(call.request, Settings(_env_file=None), context=call.context))
        now = datetime.now(UTC)
        plan = find_plan(
            evaluator._context(HOOK, call.context, data, now, None, now), evaluator.drugs, now
        )
        if plan is None:
            return {"error": "no KAP plan for this request"}

        def run(builder: Any) -> object:
            return builder(evaluator._context(HOOK, call.context, data, plan.t0, plan, now))

        return {
            name: get_cpu(time_sync(partial(run, builder), budget)) for name, builder in BUILDERS
        }
    except Exception as exc:  # the benchmark must survive refactors of the domain
        return {"error": f"{type(exc).__name__}: {exc}"}


def get_cpu(samples: list[Sample]) -> float | int | None:
    return summarize(samples)["cpu_median_ms"]


def measure_fast_path(request: Json, evaluator: RuleEvaluator, budget: Budget) -> dict[str, Any]:
    """parse + triage of a non-KAP order: all the service does for it."""
    body = orjson.dumps(request)

    def fast() -> object:
        call = parse_call(body, HOOK)
        return evaluator.triage(HOOK, call.context)

    return {"parse_and_triage": summarize(time_sync(fast, budget)), "request_bytes": len(body)}


def ruleset_info(evaluator: RuleEvaluator) -> dict[str, Any]:
    return dict(evaluator.ruleset_info)
