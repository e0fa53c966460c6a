"""Pin down every durable-rules behaviour the adapter relies on (see cds/engine/durable.py)."""

from __future__ import annotations

import random
import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cds.engine.durable import DurableEngine, Match

BIPOLAR_WITHOUT_STABILIZER = {
    "all": [
        {"plan": {"$and": [{"t": "plan"}]}},
        {"bipolar": {"$and": [{"t": "condition"}, {"vs": "VS-BIPOLAR"}, {"active": True}]}},
        {"not0$not": {"$and": [{"t": "medication"}, {"vs": "VS-MOOD-STABILIZER"}]}},
    ]
}
HIGH_BP = {
    "all": [
        {"plan": {"$and": [{"t": "plan"}]}},
        {"bp": {"$and": [{"t": "bp"}, {"$or": [{"$gt": {"sbp": 140}}, {"$gt": {"dbp": 90}}]}]}},
    ]
}
RULES = {"hook": {"CI-008#warn": BIPOLAR_WITHOUT_STABILIZER, "CI-010#warn": HIGH_BP}}


def make_engine() -> DurableEngine:
    return DurableEngine(RULES, {"hook": frozenset({"medication"})})


PLAN = {"t": "plan", "drug": "ketamine"}
BIPOLAR = {"t": "condition", "vs": "VS-BIPOLAR", "active": True, "ref": "Condition/1"}
LITHIUM = {"t": "medication", "vs": "VS-MOOD-STABILIZER", "ref": "MedicationStatement/2"}
OTHER_MED = {"t": "medication", "vs": "VS-OPIOID", "ref": "MedicationRequest/3"}


def keys(matches: list[Match]) -> list[str]:
    return sorted(m.key for m in matches)


def test_negation_holds_whatever_the_fact_order() -> None:
    engine = make_engine()
    assert keys(engine.run("hook", [PLAN, BIPOLAR, LITHIUM])) == []
    assert keys(engine.run("hook", [LITHIUM, PLAN, BIPOLAR])) == []
    assert keys(engine.run("hook", [PLAN, BIPOLAR, OTHER_MED])) == ["CI-008#warn"]


def test_one_match_per_matching_fact_and_bound_facts_returned() -> None:
    engine = make_engine()
    high = {"t": "bp", "sbp": 150, "dbp": 80, "ref": "Observation/a"}
    normal = {"t": "bp", "sbp": 120, "dbp": 80, "ref": "Observation/b"}
    matches = engine.run("hook", [PLAN, normal, high])
    assert keys(matches) == ["CI-010#warn"]
    assert matches[0].facts["bp"]["ref"] == "Observation/a"
    assert "sid" not in matches[0].facts["bp"]


def test_unmatched_facts_do_not_drop_other_matches() -> None:
    # Quirk 2: batch assertion would raise MessageNotHandled and lose every action.
    engine = make_engine()
    high = {"t": "bp", "sbp": 150, "dbp": 95}
    assert keys(engine.run("hook", [{"t": "nothing-listens"}, PLAN, high])) == ["CI-010#warn"]


def test_identical_facts_are_both_accepted() -> None:
    # Quirk 4: identical messages would raise MessageObservedException without an id.
    engine = make_engine()
    high = {"t": "bp", "sbp": 150, "dbp": 95}
    assert len(engine.run("hook", [PLAN, high, dict(high)])) == 2


def test_sessions_never_leak_into_each_other_and_state_is_deleted() -> None:
    engine = make_engine()
    for _ in range(3000):  # a full state table would raise MemoryError (quirk 7)
        engine.run("hook", [PLAN, BIPOLAR])
        assert engine.run("hook", [PLAN]) == []  # quirk 8: a half-done join, then delete


def test_unknown_ruleset_and_empty_facts() -> None:
    engine = make_engine()
    assert engine.run("not-a-hook", [PLAN]) == []
    assert engine.run("hook", []) == []


def test_definitions_are_not_mutated() -> None:
    definitions: dict[str, Any] = {"hook": {"CI-010#warn": {"all": HIGH_BP["all"]}}}
    DurableEngine(definitions, {})
    assert "run" not in definitions["hook"]["CI-010#warn"]  # quirk 5


fact_pool = st.lists(
    st.sampled_from(
        [
            BIPOLAR,
            LITHIUM,
            OTHER_MED,
            {"t": "bp", "sbp": 150, "dbp": 70},
            {"t": "bp", "sbp": 120, "dbp": 70},
            {"t": "unrelated", "x": 1},
        ]
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(facts=fact_pool, seed=st.integers(0, 10_000))
def test_same_facts_in_any_order_give_the_same_matches(
    facts: list[dict[str, Any]], seed: int
) -> None:
    engine = make_engine()
    shuffled = [PLAN, *facts]
    random.Random(seed).shuffle(shuffled)
    assert keys(engine.run("hook", [PLAN, *facts])) == keys(engine.run("hook", shuffled))


def test_fifty_concurrent_evaluations_never_mix() -> None:
    engine = make_engine()
    results: dict[int, list[str]] = {}

    def evaluate(i: int) -> None:
        sbp = 150 if i % 2 else 120
        facts = [PLAN, {"t": "bp", "sbp": sbp, "dbp": 70, "ref": f"Observation/{i}"}]
        if i % 3 == 0:
            facts.append(BIPOLAR)
        for _ in range(20):
            matches = engine.run("hook", facts)
            refs = {m.facts["bp"]["ref"] for m in matches if "bp" in m.facts}
            assert refs <= {f"Observation/{i}"}
            results[i] = keys(matches)

    threads = [threading.Thread(target=evaluate, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(50):
        expected = (["CI-008#warn"] if i % 3 == 0 else []) + (["CI-010#warn"] if i % 2 else [])
        assert results[i] == sorted(expected)


# Quirk 9: numbers of any magnitude reach the engine and compare as Python compares them.
MAGNITUDES = [1e16, 1e20, 1e308, -1e308, 5e-324, 1e-7, -0.0, 0.0, 1.5e16, 141.0, 139.5]
HUGE_INTS = [10**30, -(10**30), 2**64, 2**63, -(2**63) - 1, 99_999_999_999_999]


def test_exponent_floats_and_huge_ints_are_compared_not_crashed() -> None:
    engine = make_engine()
    for value in [*MAGNITUDES, *HUGE_INTS]:
        bp = {"t": "bp", "sbp": value, "dbp": 80, "ref": "Observation/x"}
        fired = keys(engine.run("hook", [PLAN, bp]))
        assert fired == (["CI-010#warn"] if value > 140 else []), value


def test_non_finite_values_count_as_absent() -> None:
    engine = make_engine()
    for value in (float("inf"), float("-inf"), float("nan")):
        bp = {"t": "bp", "sbp": value, "dbp": 80, "ref": "Observation/x"}
        assert keys(engine.run("hook", [PLAN, bp])) == []


@settings(max_examples=300, deadline=None)
@given(value=st.floats(allow_nan=False, allow_infinity=False) | st.integers())
def test_any_finite_number_compares_like_python(value: float) -> None:
    bp = {"t": "bp", "sbp": value, "dbp": 80, "ref": "Observation/x"}
    fired = keys(ENGINE.run("hook", [PLAN, bp]))
    assert fired == (["CI-010#warn"] if value > 140 else [])


ENGINE = make_engine()
