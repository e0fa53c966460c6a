"""The ``history`` and quality fact builders: session aggregation and course edges, the planned
session never being its own "previous session", consent period and coverage logic, REMS, visits
and scores relative to the course."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cds.facts import history, quality
from cds.facts.context import FactContext, Plan
from cds.pipeline_types import PatientData
from cds.ruleset.loader import LoadedRuleSet

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
KETAMINE = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6130"}]}
ESKETAMINE = {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "50458-028-02"}]}
NASAL = {"coding": [{"system": "http://snomed.info/sct", "code": "46713006"}]}
IV = {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]}
Json = dict[str, Any]


def admin(
    aid: str, when: datetime, esketamine: bool = False, mg: float = 35, encounter: str | None = None
) -> Json:
    resource: Json = {
        "resourceType": "MedicationAdministration",
        "id": aid,
        "status": "completed",
        "medicationCodeableConcept": ESKETAMINE if esketamine else KETAMINE,
        "subject": {"reference": "Patient/p"},
        "effectiveDateTime": when.isoformat(),
        "dosage": {
            "route": NASAL if esketamine else IV,
            "dose": {
                "value": mg,
                "unit": "mg",
                "system": "http://unitsofmeasure.org",
                "code": "mg",
            },
        },
    }
    if encounter:
        resource["context"] = {"reference": f"Encounter/{encounter}"}
    return resource


def context(
    ruleset: LoadedRuleSet,
    resources: list[Json],
    hook: str = "order-sign",
    drug: str = "ketamine",
    route: str = "iv",
    t0: datetime = T0,
    encounter: Json | None = None,
) -> FactContext:
    by_type: dict[str, list[Json]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    plan = Plan(drug=drug, route=route, t0=t0, encounter=encounter)
    return FactContext(
        hook=hook,
        context={"patientId": "p"},
        data=PatientData(by_type),
        t0=t0,
        tz=ZoneInfo("UTC"),
        policy=ruleset.policy,
        valuesets=ruleset.valuesets,
        plan=plan,
    )


def history_fact(ruleset: LoadedRuleSet, resources: list[Json], **kwargs: Any) -> Json:
    facts = history.build(context(ruleset, resources, **kwargs))
    assert len(facts) == 1
    return facts[0]


def facts_of(kind: str, ctx: FactContext) -> list[Json]:
    return [f for f in quality.build(ctx) if f["t"] == kind]


# ---- history: aggregation, courses, counts -------------------------------------------------


def test_no_prior_session_is_a_new_course(ruleset: LoadedRuleSet) -> None:
    fact = history_fact(ruleset, [])
    assert fact["sessions_total"] == 0 and fact["new_course"] is True
    assert fact.get("hours_since_last") is None
    assert fact["course_week"] == 1 and fact["sessions_42d"] == 1  # the planned session


@pytest.mark.parametrize(("gap_minutes", "sessions"), [(180, 1), (181, 2)])
def test_aggregation_window_edge(ruleset: LoadedRuleSet, gap_minutes: int, sessions: int) -> None:
    first = T0 - timedelta(days=3)
    fact = history_fact(
        ruleset, [admin("a", first), admin("b", first + timedelta(minutes=gap_minutes))]
    )
    assert fact["sessions_total"] == sessions
    # Intervals run from session *starts*: the later dose only moves it when it is a new session.
    expected_start = first if sessions == 1 else first + timedelta(minutes=gap_minutes)
    assert fact["hours_since_last"] == round((T0 - expected_start) / timedelta(hours=1), 2)


def test_two_spravato_devices_are_one_56mg_session(ruleset: LoadedRuleSet) -> None:
    first = T0 - timedelta(days=3)
    fact = history_fact(
        ruleset,
        [admin("d1", first, True, 28), admin("d2", first + timedelta(minutes=5), True, 28)],
        drug="esketamine",
        route="nasal",
    )
    assert fact["sessions_total"] == 1 and fact["sessions_7d"] == 2
    assert fact["course_had_56mg"] is True and fact["last_drug"] == "esketamine"


@pytest.mark.parametrize(("gap_days", "new_course"), [(183, False), (184, True)])
def test_course_reset_edge_before_t0(
    ruleset: LoadedRuleSet, gap_days: int, new_course: bool
) -> None:
    fact = history_fact(ruleset, [admin("a", T0 - timedelta(days=gap_days))])
    assert fact["new_course"] is new_course
    assert fact["course_sessions"] == (0 if new_course else 1)


@pytest.mark.parametrize(("gap_days", "course_sessions"), [(183, 3), (184, 2)])
def test_course_reset_edge_between_sessions(
    ruleset: LoadedRuleSet, gap_days: int, course_sessions: int
) -> None:
    last = T0 - timedelta(days=10)
    previous = last - timedelta(days=7)
    oldest = previous - timedelta(days=gap_days)
    fact = history_fact(ruleset, [admin("a", oldest), admin("b", previous), admin("c", last)])
    assert fact["sessions_total"] == 3 and fact["course_sessions"] == course_sessions
    assert fact["course_days"] == (10 + 7 + gap_days if course_sessions == 3 else 17)


def test_rolling_windows_exclude_their_first_day(ruleset: LoadedRuleSet) -> None:
    # Weekly dosing: the session exactly 7 days ago is outside "the 7 days before T0".
    fact = history_fact(
        ruleset, [admin("a", T0 - timedelta(days=7)), admin("b", T0 - timedelta(days=41))]
    )
    assert fact["sessions_7d"] == 1 and fact["sessions_42d"] == 3
    assert fact["course_week"] == 6


def test_supplemental_dose_belongs_to_the_planned_session(ruleset: LoadedRuleSet) -> None:
    fact = history_fact(
        ruleset, [admin("im1", T0 - timedelta(minutes=12)), admin("old", T0 - timedelta(days=4))]
    )
    assert fact["sessions_total"] == 1 and fact["days_since_last"] == 4


def test_encounter_doses_are_not_previous_at_discharge(ruleset: LoadedRuleSet) -> None:
    start = T0 - timedelta(hours=4)  # discharge 4 h after the encounter began: T0 = discharge
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "period": {"start": start.isoformat(), "end": T0.isoformat()},
    }
    fact = history_fact(
        ruleset,
        [
            admin("today", start + timedelta(minutes=10), encounter="e1"),
            admin("old", T0 - timedelta(days=3)),
        ],
        hook="encounter-discharge",
        encounter=encounter,
    )
    assert fact["sessions_total"] == 1 and fact["days_since_last"] == 3


def test_chart_open_counts_every_session_and_plans_none(ruleset: LoadedRuleSet) -> None:
    fact = history_fact(ruleset, [admin("a", T0 - timedelta(minutes=30))], hook="patient-view")
    assert fact["sessions_total"] == 1 and fact["sessions_7d"] == 1


# ---- consent --------------------------------------------------------------------------------


def consent(
    text: str = "Ketamine-assisted psychotherapy",
    given: str = "2026-11-01T09:00:00Z",
    start: str | None = "2026-11-01",
    end: str | None = "2027-11-01",
    local: bool = True,
    status: str = "active",
    cid: str = "c1",
) -> Json:
    category = [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}]
    if local:
        category.append({"coding": [{"system": "urn:kap-cds:consent", "code": "kap-treatment"}]})
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    return {
        "resourceType": "Consent",
        "id": cid,
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "treatment",
                }
            ]
        },
        "category": category,
        "patient": {"reference": "Patient/p"},
        "dateTime": given,
        "policyRule": {"text": text},
        "provision": {"period": period},
    }


def consent_fact(ruleset: LoadedRuleSet, resources: list[Json], **kwargs: Any) -> Json | None:
    found = facts_of("consent", context(ruleset, resources, **kwargs))
    return found[0] if found else None


@pytest.mark.parametrize(
    ("end", "valid"),
    [
        ("2026-11-20", True),  # a date-only end includes that day
        ("2026-11-19", False),
        ("2026-11-20T14:59:00Z", False),
        (None, True),
    ],
)
def test_consent_period_end(ruleset: LoadedRuleSet, end: str | None, valid: bool) -> None:
    fact = consent_fact(ruleset, [consent(end=end)])
    assert fact is not None
    assert fact["valid"] is valid and fact["expired"] is (not valid)
    assert (fact.get("expired_display") is not None) is (not valid)


def test_consent_period_not_started_is_neither_valid_nor_expired(ruleset: LoadedRuleSet) -> None:
    fact = consent_fact(ruleset, [consent(given="2026-11-01T09:00:00Z", start="2026-11-21")])
    assert fact is not None and fact["valid"] is False and fact["expired"] is False


def test_consent_signed_after_t0_or_inactive_does_not_count(ruleset: LoadedRuleSet) -> None:
    assert consent_fact(ruleset, [consent(given="2026-11-21T09:00:00Z")]) is None
    assert consent_fact(ruleset, [consent(status="inactive")]) is None


def test_generic_consent_must_name_kap(ruleset: LoadedRuleSet) -> None:
    assert consent_fact(ruleset, [consent(text="Colonoscopy", local=False)]) is None
    assert consent_fact(ruleset, [consent(text="IV ketamine series", local=False)]) is not None


def test_valid_consent_wins_over_newer_expired_one(ruleset: LoadedRuleSet) -> None:
    old = consent(given="2026-01-05T09:00:00Z", start="2026-01-05", end=None, cid="old")
    expired = consent(given="2026-06-01T09:00:00Z", start="2026-06-01", end="2026-11-01", cid="new")
    fact = consent_fact(ruleset, [expired, old])
    assert fact is not None and fact["ref"] == "Consent/old" and fact["valid"] is True
    assert fact["age_days"] == pytest.approx(319.25)


@pytest.mark.parametrize(
    ("text", "drug", "route", "covers"),
    [
        ("Sublingual ketamine lozenges", "ketamine", "sublingual", True),
        ("Sublingual ketamine lozenges", "ketamine", "im", False),
        ("Sublingual ketamine lozenges", "esketamine", "nasal", False),
        ("Ketamine-assisted psychotherapy", "esketamine", "nasal", True),
        (
            "Ketamine-assisted psychotherapy (ketamine and esketamine, all routes)",
            "ketamine",
            "im",
            True,
        ),
        ("SPRAVATO (esketamine) nasal spray", "ketamine", "iv", False),
        ("IV and IM ketamine; esketamine", "esketamine", "nasal", True),
        ("IV ketamine infusion", "ketamine", "unknown", True),
    ],
)
def test_consent_covers_plan(
    ruleset: LoadedRuleSet, text: str, drug: str, route: str, covers: bool
) -> None:
    fact = consent_fact(ruleset, [consent(text=text)], drug=drug, route=route)
    assert fact is not None and fact["covers_plan"] is covers


def test_consent_coded_provision_narrows_drug(ruleset: LoadedRuleSet) -> None:
    coded = consent(text="KAP treatment consent")
    coded["provision"]["code"] = [ESKETAMINE]
    assert (consent_fact(ruleset, [coded], drug="ketamine") or {})["covers_plan"] is False
    assert (consent_fact(ruleset, [coded], drug="esketamine", route="nasal") or {})[
        "covers_plan"
    ] is True


# ---- REMS, visits, scores -------------------------------------------------------------------


def observation(oid: str, system: str, code: str, when: datetime, **value: Any) -> Json:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "effectiveDateTime": when.isoformat(),
        **value,
    }


def test_newest_rems_record_decides(ruleset: LoadedRuleSet) -> None:
    enrolled = observation(
        "r1", "urn:kap-cds:obs", "rems-patient-enrolled", T0 - timedelta(days=30), valueBoolean=True
    )
    ended = observation(
        "r2", "urn:kap-cds:obs", "rems-patient-enrolled", T0 - timedelta(days=3), valueBoolean=False
    )
    assert len(facts_of("rems", context(ruleset, [enrolled]))) == 1
    assert facts_of("rems", context(ruleset, [enrolled, ended])) == []


def appointment(aid: str, code: str, when: datetime, status: str = "booked") -> Json:
    return {
        "resourceType": "Appointment",
        "id": aid,
        "status": status,
        "serviceType": [{"coding": [{"system": "urn:kap-cds:appointment-type", "code": code}]}],
        "start": when.isoformat(),
        "participant": [{"status": "accepted"}],
    }


def test_visits_relate_to_the_previous_session(ruleset: LoadedRuleSet) -> None:
    session = T0 - timedelta(days=2)
    resources = [
        admin("a", session),
        appointment("i1", "kap-integration", T0 + timedelta(days=3)),
        appointment("p1", "kap-preparation", T0 - timedelta(days=10), "fulfilled"),
        appointment("x1", "kap-integration", T0 + timedelta(days=1), "cancelled"),
    ]
    visits = {
        f["ref"]: f for f in facts_of("visit", context(ruleset, resources, hook="patient-view"))
    }
    assert set(visits) == {"Appointment/i1", "Appointment/p1"}
    assert visits["Appointment/i1"]["after_last_session_days"] == 5
    assert visits["Appointment/i1"]["days_ago"] == -3
    assert visits["Appointment/p1"].get("after_last_session_days") is None


def test_depression_score_relative_to_course(ruleset: LoadedRuleSet) -> None:
    course_start = T0 - timedelta(days=29)
    sessions = [admin("a", course_start), admin("b", T0 - timedelta(days=5))]
    score = observation(
        "s1", "urn:kap-cds:obs", "madrs-total", course_start + timedelta(days=22), valueInteger=24
    )
    older = observation(
        "s0",
        "http://loinc.org",
        "44261-6",
        course_start - timedelta(days=3),
        valueQuantity={"value": 19},
    )
    (fact,) = facts_of("lab", context(ruleset, [*sessions, score, older]))
    assert fact["kind"] == "depression-score" and fact["value"] == 24
    assert fact["since_course_start"] is True and fact["course_day"] == 22


def test_score_before_a_new_course_is_not_since_its_start(ruleset: LoadedRuleSet) -> None:
    score = observation(
        "s1", "http://loinc.org", "44261-6", T0 - timedelta(days=3), valueQuantity={"value": 12}
    )
    (fact,) = facts_of("lab", context(ruleset, [score]))
    assert fact["since_course_start"] is False and fact.get("course_day") is None


def test_newest_liver_test(ruleset: LoadedRuleSet) -> None:
    alt = observation("alt", "http://loinc.org", "1742-6", T0 - timedelta(days=400))
    ggt = observation("ggt", "http://loinc.org", "2324-2", T0 - timedelta(days=100))
    (fact,) = facts_of("lab", context(ruleset, [alt, ggt]))
    assert fact["kind"] == "lft" and fact["ref"] == "Observation/ggt"


def test_expired_consent_names_its_last_day(ruleset: LoadedRuleSet) -> None:
    fact = consent_fact(ruleset, [consent(end="2026-11-19")])
    assert fact is not None and fact["expired_display"] == "19 Nov 2026"
