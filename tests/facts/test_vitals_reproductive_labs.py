"""The ``bp``, ``pregnancy``, ``breastfeeding`` and ``lab`` (egfr, drug-screen) builders:
newest wins, units, same-day logic, status filters, look-backs, and real third-party bundles."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from shared_data import third_party_bundles, third_party_bundles_or_empty

from cds.config import Settings
from cds.evaluator import RuleEvaluator, build_evaluator
from cds.facts import labs, reproductive, vitals
from cds.facts.context import FactContext
from cds.facts.schema import FACT_TYPES
from cds.pipeline_types import PatientData

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LOINC, SCT, ICD = "http://loinc.org", "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
SUBJECT = {"reference": "Patient/p1"}
THIRD_PARTY = third_party_bundles_or_empty()
Json = dict[str, Any]


@pytest.fixture(scope="module")
def evaluator() -> RuleEvaluator:
    return build_evaluator(Settings(_env_file=None))  # type: ignore[call-arg]


def context(
    evaluator: RuleEvaluator,
    resources: list[Json],
    t0: datetime = T0,
    tz: str = "UTC",
    hook: str = "order-sign",
    patient_id: str = "p1",
) -> FactContext:
    grouped: dict[str, list[Json]] = defaultdict(list)
    for resource in resources:
        grouped[resource["resourceType"]].append(resource)
    zone = ZoneInfo(tz)
    return FactContext(
        hook=hook,
        context={"patientId": patient_id},
        data=PatientData(dict(grouped)),
        t0=t0.astimezone(zone),
        tz=zone,
        policy=evaluator.ruleset.policy,
        valuesets=evaluator.ruleset.valuesets,
    )


def concept(system: str, code: str) -> Json:
    return {"coding": [{"system": system, "code": code}]}


def qty(value: float, code: str = "mm[Hg]") -> Json:
    return {"value": value, "system": UCUM, "code": code}


def panel(
    sbp: float, dbp: float, when: str, status: str = "final", oid: str = "bp", unit: str = "mm[Hg]"
) -> Json:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": concept(LOINC, "85354-9"),
        "effectiveDateTime": when,
        "component": [
            {"code": concept(LOINC, "8480-6"), "valueQuantity": qty(sbp, unit)},
            {"code": concept(LOINC, "8462-4"), "valueQuantity": qty(dbp, unit)},
        ],
    }


def single(loinc: str, when: str, oid: str, **value: Any) -> Json:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": concept(LOINC, loinc),
        "effectiveDateTime": when,
        **value,
    }


def condition(
    oid: str, system: str, code: str, onset: str, clinical: str = "active", **extra: Any
) -> Json:
    return {
        "resourceType": "Condition",
        "id": oid,
        "clinicalStatus": concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", clinical
        ),
        "code": concept(system, code),
        "subject": SUBJECT,
        "onsetDateTime": onset,
        **extra,
    }


def bp_fact(evaluator: RuleEvaluator, *resources: Json, **kw: Any) -> Json | None:
    facts = vitals.build(context(evaluator, list(resources), **kw))
    return facts[0] if facts else None


# ---- bp ----------------------------------------------------------------------------------


def test_newest_bp_wins_irrespective_of_value(evaluator: RuleEvaluator) -> None:
    fact = bp_fact(
        evaluator,
        panel(150, 95, "2026-11-19T10:00:00Z", oid="high"),
        panel(128, 80, "2026-11-19T10:20:00Z", oid="recheck"),
    )
    assert fact is not None
    assert (fact["sbp"], fact["dbp"], fact["ref"]) == (128, 80, "Observation/recheck")
    fact = bp_fact(
        evaluator,
        panel(120, 80, "2026-11-19T09:00:00Z", oid="normal"),
        panel(150, 95, "2026-11-19T10:00:00Z", oid="high"),
    )
    assert fact is not None and fact["sbp"] == 150


@pytest.mark.parametrize("status", ["entered-in-error", "preliminary", "cancelled", "registered"])
def test_unusable_status_is_ignored(evaluator: RuleEvaluator, status: str) -> None:
    fact = bp_fact(
        evaluator,
        panel(122, 78, "2026-11-19T10:00:00Z", oid="ok"),
        panel(190, 120, "2026-11-19T12:00:00Z", status=status, oid="bad"),
    )
    assert fact is not None and fact["ref"] == "Observation/ok"


@pytest.mark.parametrize("status", ["amended", "corrected"])
def test_amended_and_corrected_count(evaluator: RuleEvaluator, status: str) -> None:
    fact = bp_fact(evaluator, panel(150, 95, "2026-11-19T12:00:00Z", status=status))
    assert fact is not None and fact["sbp"] == 150


def test_readings_after_t0_are_ignored(evaluator: RuleEvaluator) -> None:
    fact = bp_fact(
        evaluator,
        panel(122, 78, "2026-11-19T10:00:00Z", oid="before"),
        panel(160, 100, "2026-11-20T15:30:00Z", oid="after"),
    )
    assert fact is not None and fact["ref"] == "Observation/before"


def test_same_day_uses_the_facility_calendar_day(evaluator: RuleEvaluator) -> None:
    # 03:00 UTC on the 20th is still the 19th in New York (T0 = 10:00 local on the 20th).
    early = panel(122, 78, "2026-11-20T03:00:00Z")
    fact = bp_fact(evaluator, early, tz="America/New_York")
    assert fact is not None and fact["same_day"] is False
    fact = bp_fact(evaluator, early)
    assert fact is not None and fact["same_day"] is True
    yesterday = bp_fact(evaluator, panel(122, 78, "2026-11-19T23:59:00Z"))
    assert yesterday is not None and yesterday["same_day"] is False
    assert yesterday["days_ago"] == pytest.approx(0.63, abs=0.01)


def test_standalone_systolic_and_diastolic_pair_within_five_minutes(
    evaluator: RuleEvaluator,
) -> None:
    sbp = single("8480-6", "2026-11-19T10:00:00Z", "s", valueQuantity=qty(150))
    dbp_near = single("8462-4", "2026-11-19T10:05:00Z", "d", valueQuantity=qty(85))
    fact = bp_fact(evaluator, sbp, dbp_near)
    assert fact is not None
    assert (fact["sbp"], fact["dbp"], fact["ref"]) == (150, 85, "Observation/s, Observation/d")
    dbp_far = single("8462-4", "2026-11-19T10:06:00Z", "d", valueQuantity=qty(85))
    assert bp_fact(evaluator, sbp, dbp_far) is None


def test_units(evaluator: RuleEvaluator) -> None:
    fact = bp_fact(evaluator, panel(20, 12, "2026-11-19T10:00:00Z", unit="kPa"))
    assert fact is not None and (fact["sbp"], fact["dbp"]) == (150.0, 90.0)
    assert bp_fact(evaluator, panel(150, 95, "2026-11-19T10:00:00Z", unit="%")) is None
    no_unit = panel(150, 95, "2026-11-19T10:00:00Z")
    for component in no_unit["component"]:
        component["valueQuantity"] = {"value": component["valueQuantity"]["value"]}
    fact = bp_fact(evaluator, no_unit)
    assert fact is not None and fact["sbp"] == 150


def test_incomplete_panel_falls_back_to_an_older_reading(evaluator: RuleEvaluator) -> None:
    partial = panel(150, 95, "2026-11-19T12:00:00Z", oid="partial")
    partial["component"] = partial["component"][:1]
    fact = bp_fact(evaluator, partial, panel(122, 78, "2026-11-19T10:00:00Z", oid="full"))
    assert fact is not None and fact["ref"] == "Observation/full"


def test_time_from_period_end_or_issued(evaluator: RuleEvaluator) -> None:
    reading = panel(150, 95, "x")
    del reading["effectiveDateTime"]
    reading["effectivePeriod"] = {"start": "2026-11-19T09:00:00Z", "end": "2026-11-19T09:10:00Z"}
    fact = bp_fact(evaluator, reading)
    assert fact is not None and fact["date_display"] == "19 Nov 2026 09:10 UTC"
    del reading["effectivePeriod"]
    reading["issued"] = "2026-11-18T08:00:00Z"
    fact = bp_fact(evaluator, reading)
    assert fact is not None and fact["date_display"] == "18 Nov 2026 08:00 UTC"


def test_invalid_newest_reading_is_reported_and_skipped(evaluator: RuleEvaluator) -> None:
    broken = panel(150, 95, "2026-11-19T12:00:00Z", oid="broken")
    broken["subject"] = "Patient/p1"  # a string where a Reference belongs
    ctx = context(evaluator, [broken, panel(122, 78, "2026-11-19T10:00:00Z", oid="ok")])
    facts = vitals.build(ctx)
    assert facts[0]["ref"] == "Observation/ok"
    assert [r for r, _problem in ctx.invalid] == ["Observation/broken"]


# ---- pregnancy ---------------------------------------------------------------------------

POS, NEG = concept(SCT, "10828004"), concept(SCT, "260385009")


def hcg(oid: str, answer: Json, when: str) -> Json:
    return single("2106-3", when, oid, valueCodeableConcept=answer)


def pregnancy(evaluator: RuleEvaluator, *resources: Json) -> Json | None:
    facts = reproductive.build_pregnancy(context(evaluator, list(resources)))
    return facts[0] if facts else None


def test_newer_negative_supersedes_positive(evaluator: RuleEvaluator) -> None:
    fact = pregnancy(
        evaluator, hcg("pos", POS, "2026-11-10T09:00:00Z"), hcg("neg", NEG, "2026-11-18T09:00:00Z")
    )
    assert fact is not None and (fact["status"], fact["ref"]) == ("not-pregnant", "Observation/neg")
    fact = pregnancy(
        evaluator, hcg("neg", NEG, "2026-11-10T09:00:00Z"), hcg("pos", POS, "2026-11-18T09:00:00Z")
    )
    assert fact is not None and fact["status"] == "pregnant"


def test_interpretation_and_status_answers(evaluator: RuleEvaluator) -> None:
    interp = single(
        "2106-3",
        "2026-11-18T09:00:00Z",
        "i",
        interpretation=[
            concept("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "NEG")
        ],
    )
    fact = pregnancy(evaluator, interp)
    assert fact is not None and fact["status"] == "not-pregnant"
    status = single(
        "82810-3", "2026-11-18T09:00:00Z", "s", valueCodeableConcept=concept(SCT, "261665006")
    )
    fact = pregnancy(evaluator, status)
    assert fact is not None and fact["status"] == "unknown"


@pytest.mark.parametrize(
    ("value", "code", "status"),
    [
        (24, "m[IU]/mL", "not-pregnant"),
        (25, "m[IU]/mL", "pregnant"),
        (30, "[IU]/L", "pregnant"),
    ],
)
def test_quantitative_hcg_cutoff(
    evaluator: RuleEvaluator, value: float, code: str, status: str
) -> None:
    fact = pregnancy(
        evaluator, single("19080-1", "2026-11-18T09:00:00Z", "q", valueQuantity=qty(value, code))
    )
    assert fact is not None and fact["status"] == status


def test_quantitative_hcg_in_unknown_unit_is_not_judged(evaluator: RuleEvaluator) -> None:
    assert (
        pregnancy(
            evaluator,
            single("19080-1", "2026-11-18T09:00:00Z", "q", valueQuantity=qty(300, "ng/mL")),
        )
        is None
    )


def test_pregnancy_condition_window_and_stale(evaluator: RuleEvaluator) -> None:
    onset_299 = (T0 - timedelta(days=299)).isoformat()
    onset_301 = (T0 - timedelta(days=301)).isoformat()
    fact = pregnancy(evaluator, condition("p", ICD, "Z34.90", onset_299))
    assert fact is not None and (fact["status"], fact["stale_condition"]) == ("pregnant", False)
    fact = pregnancy(evaluator, condition("p", ICD, "Z34.90", onset_301))
    assert fact is not None and (fact["status"], fact["stale_condition"]) == ("unknown", True)
    assert fact["days_ago"] == pytest.approx(301)
    fact = pregnancy(
        evaluator, condition("p", ICD, "Z34.90", onset_301), hcg("neg", NEG, "2026-11-18T09:00:00Z")
    )
    assert fact is not None and fact["stale_condition"] is False


def test_pregnancy_ended_by_procedure_condition_or_abatement(evaluator: RuleEvaluator) -> None:
    preg = condition("p", ICD, "O09.511", "2026-03-01")
    delivery = {
        "resourceType": "Procedure",
        "id": "d",
        "status": "completed",
        "code": concept(SCT, "11466000"),
        "subject": SUBJECT,
        "performedDateTime": "2026-11-01",
    }
    fact = pregnancy(evaluator, preg, delivery)
    assert fact is not None and fact["status"] == "not-pregnant"
    outcome = condition("o", ICD, "Z37.0", "2026-11-01")
    fact = pregnancy(evaluator, preg, outcome)
    assert fact is not None and fact["status"] == "not-pregnant"
    abated = condition(
        "p", ICD, "Z34.90", "2026-03-01", clinical="resolved", abatementDateTime="2026-10-15"
    )
    fact = pregnancy(evaluator, abated)
    assert fact is not None and fact["status"] == "not-pregnant"


def test_refuted_pregnancy_condition_is_ignored(evaluator: RuleEvaluator) -> None:
    refuted = condition(
        "p",
        ICD,
        "Z34.90",
        "2026-10-01",
        verificationStatus=concept(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", "refuted"
        ),
    )
    assert pregnancy(evaluator, refuted) is None


def test_pregnancy_evidence_older_than_lookback_is_not_used(evaluator: RuleEvaluator) -> None:
    assert pregnancy(evaluator, hcg("pos", POS, "2025-12-01T09:00:00Z")) is None


# ---- breastfeeding -----------------------------------------------------------------------


def breastfeeding(evaluator: RuleEvaluator, *resources: Json) -> Json | None:
    facts = reproductive.build_breastfeeding(context(evaluator, list(resources)))
    return facts[0] if facts else None


def test_newer_no_suppresses_breastfeeding(evaluator: RuleEvaluator) -> None:
    yes = single(
        "63895-7", "2026-06-01T09:00:00Z", "y", valueCodeableConcept=concept(LOINC, "LA29252-6")
    )
    no = single(
        "63895-7", "2026-10-01T09:00:00Z", "n", valueCodeableConcept=concept(LOINC, "LA29253-4")
    )
    fact = breastfeeding(evaluator, yes, no)
    assert fact is not None and fact["status"] == "no"
    fact = breastfeeding(evaluator, {**yes, "effectiveDateTime": "2026-11-01T09:00:00Z"}, no)
    assert fact is not None and fact["status"] == "yes"


def test_breastfeeding_condition_and_finding(evaluator: RuleEvaluator) -> None:
    fact = breastfeeding(evaluator, condition("c", SCT, "413712001", "2026-09-01"))
    assert fact is not None and fact["status"] == "yes"
    finding = single("x", "2026-09-01T09:00:00Z", "f")
    finding["code"] = concept(SCT, "413712001")
    fact = breastfeeding(evaluator, finding)
    assert fact is not None and fact["status"] == "yes"
    assert breastfeeding(evaluator, condition("c", ICD, "Z39.1", "1 Oct 2025")) is None


# ---- labs --------------------------------------------------------------------------------


def egfr(oid: str, value: float, when: str, code: str = "mL/min/{1.73_m2}") -> Json:
    return single("62238-1", when, oid, valueQuantity=qty(value, code))


def lab_facts(evaluator: RuleEvaluator, *resources: Json) -> list[Json]:
    return labs.build(context(evaluator, list(resources)))


def test_newest_egfr_within_lookback(evaluator: RuleEvaluator) -> None:
    facts = lab_facts(
        evaluator, egfr("old", 25, "2026-08-01T09:00:00Z"), egfr("new", 48, "2026-10-30T09:00:00Z")
    )
    assert [(f["kind"], f["value"], f["ref"]) for f in facts] == [("egfr", 48, "Observation/new")]
    assert lab_facts(evaluator, egfr("ancient", 20, "2026-05-01T09:00:00Z")) == []


def test_egfr_units_and_comparator_strings(evaluator: RuleEvaluator) -> None:
    facts = lab_facts(evaluator, egfr("e", 29, "2026-10-30T09:00:00Z", code="mL/min"))
    assert facts[0]["value"] == 29
    assert lab_facts(evaluator, egfr("e", 1.2, "2026-10-30T09:00:00Z", code="mg/dL")) == []
    text = single("33914-3", "2026-10-30T09:00:00Z", "t", valueString=">60")
    assert lab_facts(evaluator, text)[0]["value"] == 60


def uds(oid: str, loinc: str, text: str, answer: Json | None, when: str, **extra: Any) -> Json:
    observation = single(loinc, when, oid, **extra)
    observation["code"]["text"] = text
    if answer is not None:
        observation["valueCodeableConcept"] = answer
    return observation


def test_positive_drug_screen_within_lookback(evaluator: RuleEvaluator) -> None:
    when_29 = (T0 - timedelta(days=29)).isoformat()
    when_31 = (T0 - timedelta(days=31)).isoformat()
    facts = lab_facts(evaluator, uds("c", "3397-7", "Cocaine [Presence] in Urine", POS, when_29))
    assert len(facts) == 1
    assert facts[0]["positive"] is True and "prescribable_vs" not in {
        k for k, v in facts[0].items() if v is not None
    }
    assert facts[0]["display"] == "Cocaine (urine screen): positive"
    assert lab_facts(evaluator, uds("c", "3397-7", "Cocaine", POS, when_31)) == []
    assert lab_facts(evaluator, uds("c", "3397-7", "Cocaine", NEG, when_29)) == []


def test_drug_screen_text_results_and_prescribable_class(evaluator: RuleEvaluator) -> None:
    opiates = uds(
        "o",
        "19295-5",
        "Opiates [Presence] in Urine by Screen method",
        None,
        "2026-11-13T09:00:00Z",
        valueString="DETECTED",
    )
    facts = lab_facts(evaluator, opiates)
    assert facts[0]["prescribable_vs"] == "VS-OPIOID"
    not_detected = {**opiates, "valueString": "Not detected"}
    assert lab_facts(evaluator, not_detected) == []


def test_lab_facts_fit_the_schema(evaluator: RuleEvaluator) -> None:
    facts = lab_facts(
        evaluator,
        egfr("e", 29, "2026-10-30T09:00:00Z"),
        uds("c", "3397-7", "Cocaine", POS, "2026-11-13T09:00:00Z"),
    )
    for fact in facts:
        assert set(fact) - {"t"} <= set(FACT_TYPES["lab"].fields)


# ---- real-world bundles ------------------------------------------------------------------


def _bundle_resources(path: Path) -> list[Json]:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    return [
        e["resource"]
        for e in bundle.get("entry") or ()
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]


def _newest_observation_time(resources: list[Json]) -> datetime:
    times = [
        datetime.fromisoformat(r["effectiveDateTime"].replace("Z", "+00:00"))
        for r in resources
        if r["resourceType"] == "Observation"
        and isinstance(r.get("effectiveDateTime"), str)
        and len(r["effectiveDateTime"]) > 10
    ]
    return max(times, default=T0) + timedelta(hours=1)


def test_third_party_bundles_are_present() -> None:
    # The parametrised test below has no cases when ../shared is missing: fail under CI.
    assert third_party_bundles()


@pytest.mark.parametrize("path", THIRD_PARTY, ids=[p.name[:40] for p in THIRD_PARTY])
def test_third_party_bundles_build(evaluator: RuleEvaluator, path: Path) -> None:
    resources = _bundle_resources(path)
    patient_id = next((str(r.get("id")) for r in resources if r["resourceType"] == "Patient"), "")
    # Once at the case time, once just after the bundle's newest observation (so the look-back
    # windows contain data and every branch of the builders runs).
    for t0 in (T0, _newest_observation_time(resources)):
        ctx = context(evaluator, resources, t0=t0, patient_id=patient_id)
        facts = vitals.build(ctx) + reproductive.build(ctx) + labs.build(ctx)
        for fact in facts:
            fields = {k for k, v in fact.items() if v is not None} - {"t"}
            assert fields <= set(FACT_TYPES[fact["t"]].fields), fact
