"""The ``weight`` and ``dose`` fact builders: unit conversions, supersession, status filters,
rates and durations, concentrations, session sums."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cds.facts import dose, weight
from cds.facts.context import FactContext, Plan
from cds.pipeline_types import PatientData
from cds.ruleset.loader import LoadedRuleSet

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
UCUM = "http://unitsofmeasure.org"
KETAMINE = {
    "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6130"}],
    "text": "ketamine hydrochloride injection",
}
IV = {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]}
IM = {"coding": [{"system": "http://snomed.info/sct", "code": "78421000"}]}
Json = dict[str, Any]


def observation(
    value: float | None = 70,
    unit: str | None = "kg",
    code: str | None = "kg",
    when: str = "2026-11-17T10:00:00+00:00",
    status: str = "final",
    oid: str = "w1",
    loinc: str = "29463-7",
) -> Json:
    quantity: Json = {} if value is None else {"value": value}
    if unit is not None:
        quantity["unit"] = unit
    if code is not None:
        quantity.update(system=UCUM, code=code)
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "effectiveDateTime": when,
        "valueQuantity": quantity,
    }


def order(
    dose_quantity: Json | None = None,
    route: Json | None = IV,
    repeat: Json | None = None,
    rate: Json | None = None,
    medication: Json | None = None,
    **dosage_extra: Any,
) -> Json:
    dose_and_rate: Json = {}
    if dose_quantity is not None:
        dose_and_rate["doseQuantity"] = dose_quantity
    dose_and_rate.update(rate or {})
    dosage: Json = {"timing": {"event": [T0.isoformat()]}, **dosage_extra}
    if repeat:
        dosage["timing"]["repeat"] = repeat
    if route:
        dosage["route"] = route
    if dose_and_rate:
        dosage["doseAndRate"] = [dose_and_rate]
    return {
        "resourceType": "MedicationRequest",
        "id": "o1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": medication or KETAMINE,
        "dosageInstruction": [dosage],
    }


def q(value: float, unit: str) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def context(
    ruleset: LoadedRuleSet,
    resources: list[Json],
    plan: Plan | None = None,
    hook: str = "order-sign",
) -> FactContext:
    by_type: dict[str, list[Json]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    return FactContext(
        hook=hook,
        context={"patientId": "p"},
        data=PatientData(by_type),
        t0=T0,
        tz=ZoneInfo("UTC"),
        policy=ruleset.policy,
        valuesets=ruleset.valuesets,
        plan=plan,
    )


def dose_fact(
    ruleset: LoadedRuleSet,
    the_order: Json,
    weights: list[Json] | None = None,
    drug: str = "ketamine",
    route: str = "iv",
) -> Json:
    plan = Plan(drug=drug, route=route, t0=T0, order=the_order)
    facts = dose.build(context(ruleset, [observation()] if weights is None else weights, plan))
    assert len(facts) == 1
    return {k: v for k, v in facts[0].items() if v is not None}


# ---- weight ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "kg", "inferred"),
    [
        ({"value": 70, "unit": "kg", "system": UCUM, "code": "kg"}, 70.0, False),
        ({"value": 70000, "unit": "g", "system": UCUM, "code": "g"}, 70.0, False),
        ({"value": 154, "unit": "lb", "system": UCUM, "code": "[lb_av]"}, 154 * 0.45359237, False),
        ({"value": 2464, "unit": "oz", "system": UCUM, "code": "[oz_av]"}, 154 * 0.45359237, False),
        ({"value": 2464, "unit": "ounces"}, 154 * 0.45359237, True),
        ({"value": 154, "unit": "lbs"}, 154 * 0.45359237, True),
        ({"value": 154, "unit": "Pounds"}, 154 * 0.45359237, True),
        ({"value": 70, "unit": "kilograms"}, 70.0, True),
        ({"value": 70}, 70.0, True),
    ],
)
def test_units_convert_to_kg(quantity: Json, kg: float, inferred: bool) -> None:
    assert weight.to_kg(quantity) == pytest.approx((kg, inferred))


@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 11, "unit": "stone"},
        {"value": 0, "code": "kg"},
        {"value": "70", "code": "kg"},
        {"value": True, "code": "kg"},
        None,
    ],
)
def test_unconvertible_weights_are_not_usable(quantity: Any) -> None:
    assert weight.to_kg(quantity) is None


def test_newest_usable_weight_wins(ruleset: LoadedRuleSet) -> None:
    resources = [
        observation(80, oid="old", when="2026-11-01T10:00:00+00:00"),
        observation(70, oid="new", when="2026-11-17T10:00:00+00:00"),
        observation(90, oid="prelim", when="2026-11-19T10:00:00+00:00", status="preliminary"),
        observation(95, oid="error", when="2026-11-19T11:00:00+00:00", status="entered-in-error"),
        observation(99, oid="future", when="2026-11-21T10:00:00+00:00"),
        observation(60, oid="height", when="2026-11-19T12:00:00+00:00", loinc="8302-2"),
    ]
    [fact] = weight.build(context(ruleset, resources))
    assert fact["kg"] == 70.0
    assert fact["ref"] == "Observation/new"
    assert fact["days_ago"] == 3
    assert fact["date_display"] == "17 Nov 2026"
    assert fact["change_pct"] == pytest.approx(12.5)  # |70 - 80| / 80, 16 days apart


@pytest.mark.parametrize("status", ["amended", "corrected"])
def test_amended_and_corrected_weights_count(ruleset: LoadedRuleSet, status: str) -> None:
    [fact] = weight.build(context(ruleset, [observation(status=status, loinc="3141-9")]))
    assert fact["kg"] == 70.0


def test_days_ago_counts_calendar_days(ruleset: LoadedRuleSet) -> None:
    [fact] = weight.build(context(ruleset, [observation(when="2026-10-20T23:00:00+00:00")]))
    assert fact["days_ago"] == 31


def test_change_outside_window_is_absent(ruleset: LoadedRuleSet) -> None:
    resources = [observation(56, oid="old", when="2026-10-08T10:00:00+00:00"), observation()]
    [fact] = weight.build(context(ruleset, resources))
    assert fact["change_pct"] is None


def test_free_text_unit_is_flagged(ruleset: LoadedRuleSet) -> None:
    [fact] = weight.build(context(ruleset, [observation(154, unit="lbs", code=None)]))
    assert fact["kg"] == 69.9
    assert fact["unit_inferred"] is True
    assert fact["original"] == "154 lbs"


def test_no_usable_weight_gives_no_fact(ruleset: LoadedRuleSet) -> None:
    assert weight.build(context(ruleset, [observation(status="preliminary")])) == []


# ---- dose from the order -----------------------------------------------------------------


def test_mg_dose_over_duration(ruleset: LoadedRuleSet) -> None:
    fact = dose_fact(ruleset, order(q(35, "mg"), repeat={"duration": 40, "durationUnit": "min"}))
    assert fact == {
        "t": "dose",
        "computable": True,
        "mg": 35.0,
        "mg_per_kg": 0.5,
        "weight_based": False,
        "rate_mg_per_kg_min": 0.0125,
        "duration_min": 40.0,
        "has_duration": True,
    }


def test_grams_and_hours(ruleset: LoadedRuleSet) -> None:
    fact = dose_fact(ruleset, order(q(0.035, "g"), repeat={"duration": 1, "durationUnit": "h"}))
    assert (fact["mg"], fact["duration_min"]) == (35.0, 60.0)


def test_mg_per_kg_order_multiplies_by_weight(ruleset: LoadedRuleSet) -> None:
    fact = dose_fact(ruleset, order(q(0.5, "mg/kg")))
    assert (fact["mg"], fact["mg_per_kg"], fact["weight_based"]) == (35.0, 0.5, True)
    assert fact["has_duration"] is False


def test_mg_per_kg_order_without_weight_keeps_the_ordered_mg_per_kg(ruleset: LoadedRuleSet) -> None:
    fact = dose_fact(ruleset, order(q(0.5, "mg/kg")), weights=[])
    assert "mg" not in fact
    assert (fact["mg_per_kg"], fact["computable"]) == (0.5, True)


@pytest.mark.parametrize(
    "weights",
    [[], [observation(when="2026-08-21T10:00:00+00:00")]],
    ids=["no-weight", "weight-91-days"],
)
def test_mg_order_without_a_recent_weight_has_no_mg_per_kg(
    ruleset: LoadedRuleSet, weights: list[Json]
) -> None:
    fact = dose_fact(ruleset, order(q(35, "mg")), weights=weights)
    assert fact["mg"] == 35.0
    assert "mg_per_kg" not in fact


@pytest.mark.parametrize(
    ("rate", "per_kg_min", "duration"),
    [
        ({"rateQuantity": q(0.5, "mg/kg/min")}, 0.5, 1.0),
        (
            {
                "rateQuantity": {
                    "value": 0.5,
                    "unit": "mg/(kg.min)",
                    "system": UCUM,
                    "code": "mg/(kg.min)",
                }
            },
            0.5,
            1.0,
        ),
        ({"rateQuantity": q(35, "mg/min")}, 0.5, 1.0),
        ({"rateQuantity": q(52.5, "mg/h")}, 0.0125, 40.0),
        ({"rateRatio": {"numerator": q(35, "mg"), "denominator": q(40, "min")}}, 0.0125, 40.0),
    ],
)
def test_rates_normalize_to_mg_per_kg_min(
    ruleset: LoadedRuleSet, rate: Json, per_kg_min: float, duration: float
) -> None:
    fact = dose_fact(ruleset, order(q(35, "mg"), rate=rate))
    assert fact["rate_mg_per_kg_min"] == pytest.approx(per_kg_min)
    assert fact["duration_min"] == pytest.approx(duration)  # derived: dose / rate
    assert fact["has_duration"] is True


def test_rate_computed_from_dose_and_duration(ruleset: LoadedRuleSet) -> None:
    fact = dose_fact(ruleset, order(q(70, "mg"), repeat={"duration": 2, "durationUnit": "min"}))
    assert fact["rate_mg_per_kg_min"] == 0.5


@pytest.mark.parametrize(
    ("text", "mg"),
    [
        ("ketamine HCl injection 50 mg/mL", 35.0),
        ("ketamine 500 mg/10 mL vial", 35.0),
        ("Ketalar 100 MG/ML", 70.0),
    ],
)
def test_ml_dose_with_a_known_concentration(ruleset: LoadedRuleSet, text: str, mg: float) -> None:
    medication = {**KETAMINE, "text": text}
    fact = dose_fact(ruleset, order(q(0.7, "mL"), medication=medication))
    assert fact["mg"] == mg


def test_ml_dose_with_contained_medication_strength(ruleset: LoadedRuleSet) -> None:
    the_order = order(q(0.7, "mL"))
    del the_order["medicationCodeableConcept"]
    the_order["contained"] = [
        {
            "resourceType": "Medication",
            "id": "m",
            "code": KETAMINE,
            "ingredient": [
                {
                    "itemCodeableConcept": KETAMINE,
                    "strength": {"numerator": q(10, "mg"), "denominator": q(1, "mL")},
                }
            ],
        }
    ]
    the_order["medicationReference"] = {"reference": "#m"}
    assert dose_fact(ruleset, the_order)["mg"] == 7.0


@pytest.mark.parametrize(
    ("the_order", "problem"),
    [
        (order(q(0.7, "mL")), "no concentration"),
        (order(q(2, "mL"), medication={**KETAMINE, "text": "ketamine 20 mg/mL"}), "20 mg/mL"),
        (
            order(q(1, "mL"), medication={**KETAMINE, "text": "ketamine 10 mg/mL or 50 mg/mL"}),
            "more than one",
        ),
        (order(q(2, "tablet")), "'tablet' is not convertible"),
        (order(None, asNeededBoolean=True), "as needed / as directed"),
        (order(None, text="use as directed"), "as needed / as directed"),
        (order(None), "no dose quantity"),
    ],
)
def test_not_computable_doses_say_why(
    ruleset: LoadedRuleSet, the_order: Json, problem: str
) -> None:
    fact = dose_fact(ruleset, the_order)
    assert fact["computable"] is False
    assert problem in fact["problem"]
    assert "mg" not in fact


def test_esketamine_devices(ruleset: LoadedRuleSet) -> None:
    fact = dose_fact(ruleset, order(q(84, "mg")), drug="esketamine", route="nasal")
    assert fact["devices"] == 3
    assert dose_fact(ruleset, order(q(70, "mg")), drug="esketamine")["devices"] == 2.5


# ---- dose from the session's administrations ---------------------------------------------


def administration(aid: str, mg: float, when: str, encounter: str = "enc") -> Json:
    return {
        "resourceType": "MedicationAdministration",
        "id": aid,
        "status": "completed",
        "medicationCodeableConcept": KETAMINE,
        "subject": {"reference": "Patient/p"},
        "context": {"reference": f"Encounter/{encounter}"},
        "effectiveDateTime": when,
        "dosage": {"route": IM, "dose": q(mg, "mg")},
    }


def test_session_sums_supplemental_doses(ruleset: LoadedRuleSet) -> None:
    encounter = {
        "resourceType": "Encounter",
        "id": "enc",
        "status": "in-progress",
        "period": {"start": T0.isoformat()},
    }
    plan = Plan(
        drug="ketamine", route="im", t0=T0, order=order(q(50, "mg"), route=IM), encounter=encounter
    )
    resources = [
        observation(),
        encounter,
        administration("a1", 50, "2026-11-20T15:05:00+00:00"),
        administration("a2", 30, "2026-11-20T15:17:00+00:00"),
        administration("yesterday", 50, "2026-11-19T15:05:00+00:00", "other"),
    ]
    [fact] = dose.build(context(ruleset, resources, plan, hook="encounter-start"))
    assert (fact["mg"], fact["mg_per_kg"]) == (80.0, 1.143)


def test_session_without_administrations_uses_the_order(ruleset: LoadedRuleSet) -> None:
    plan = Plan(drug="ketamine", route="im", t0=T0, order=order(q(50, "mg"), route=IM))
    [fact] = dose.build(context(ruleset, [observation()], plan, hook="encounter-start"))
    assert fact["mg"] == 50.0


def test_no_plan_no_fact(ruleset: LoadedRuleSet) -> None:
    assert dose.build(context(ruleset, [observation()])) == []
