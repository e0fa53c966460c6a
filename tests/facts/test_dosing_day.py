"""The dosing-day facts: driving clearance (incl. facility time zone), observation and
monitoring windows, fasting stop times, escort, and the clearance shown on the KAP-DRV-001 card."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cds.config import Settings
from cds.evaluator import RuleEvaluator, build_evaluator
from cds.facts.dosing_day import clearance, fasts, monitoring_missing, observe_until
from cds.facts.fhir import display_time
from cds.facts.sessions import KapDose, Session
from cds.fhir.gather import gather_sync
from cds.hooks.models import CdsRequest
from cds.ruleset.cases import Case, build_request, case_now
from cds.ruleset.loader import load_ruleset
from cds.ruleset.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "fhir_examples"
UTC = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_ruleset(ROOT / "rules").policy


def with_values(policy: Policy, **values: Any) -> Policy:
    return dataclasses.replace(policy, values={**policy.values, **values})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def session(drug: str, *spans: tuple[str, str]) -> Session:
    route = "nasal" if drug == "esketamine" else "iv"
    return Session(
        [
            KapDose(
                at(start), at(end), drug, route, 28.0, f"MedicationAdministration/{i}", False, "enc"
            )
            for i, (start, end) in enumerate(spans)
        ]
    )


ESK = session(
    "esketamine",
    ("2026-11-20T15:00:00+00:00", "2026-11-20T15:00:00+00:00"),
    ("2026-11-20T15:05:00+00:00", "2026-11-20T15:05:00+00:00"),
)
KET = session("ketamine", ("2026-11-20T15:00:00+00:00", "2026-11-20T15:40:00+00:00"))


# ---- clearance ------------------------------------------------------------------------------


def test_ketamine_clearance_is_end_plus_24_hours(policy: Policy) -> None:
    assert display_time(clearance(KET, policy, UTC), UTC) == "21 Nov 2026 15:40 UTC"


def test_esketamine_clearance_with_24h_switch_is_the_later_time(policy: Policy) -> None:
    assert policy.flag("driving_24h_all_routes")
    assert display_time(clearance(ESK, policy, UTC), UTC) == "21 Nov 2026 15:05 UTC"


def test_esketamine_clearance_label_only_is_next_morning(policy: Policy) -> None:
    label_only = with_values(policy, driving_24h_all_routes=False)
    assert display_time(clearance(ESK, label_only, UTC), UTC) == "21 Nov 2026 06:00 UTC"


def test_esketamine_next_morning_hour_is_policy(policy: Policy) -> None:
    later = with_values(policy, driving_24h_all_routes=False, driving_next_day_hour=8)
    assert display_time(clearance(ESK, later, UTC), UTC) == "21 Nov 2026 08:00 UTC"


def test_next_day_is_the_local_calendar_day(policy: Policy) -> None:
    # 22:30 in New York on 11-20 is already 11-21 in UTC: "the next day" must be 11-21 local,
    # not 11-22.
    late = session("esketamine", ("2026-11-21T03:30:00+00:00", "2026-11-21T03:30:00+00:00"))
    label_only = with_values(policy, driving_24h_all_routes=False)
    assert display_time(clearance(late, label_only, NEW_YORK), NEW_YORK) == "21 Nov 2026 06:00 EST"
    assert display_time(clearance(late, label_only, UTC), UTC) == "22 Nov 2026 06:00 UTC"


def test_next_morning_across_daylight_saving_change(policy: Policy) -> None:
    # US DST ends 2026-11-01: local 06:00 the next day is 11:00 UTC, not 10:00.
    evening = session("esketamine", ("2026-10-31T22:00:00+00:00", "2026-10-31T22:00:00+00:00"))
    label_only = with_values(policy, driving_24h_all_routes=False)
    assert clearance(evening, label_only, NEW_YORK) == at("2026-11-01T11:00:00+00:00")


# ---- observation and monitoring windows -----------------------------------------------------


def test_observe_until_esketamine_from_first_device_ketamine_from_end(policy: Policy) -> None:
    assert observe_until(ESK, policy) == at("2026-11-20T17:00:00+00:00")
    assert observe_until(KET, policy) == at("2026-11-20T16:40:00+00:00")


DISCHARGE = at("2026-11-20T17:10:00+00:00")
PRE = at("2026-11-20T14:50:00+00:00")
LATE = at("2026-11-20T16:55:00+00:00")
SPO2 = [at("2026-11-20T15:30:00+00:00")]


@pytest.mark.parametrize(
    ("minutes", "complete"), [(29, False), (30, True), (50, True), (51, False)]
)
def test_esketamine_40_minute_bp_window(policy: Policy, minutes: int, complete: bool) -> None:
    post = ESK.start + timedelta(minutes=minutes)
    missing = monitoring_missing(ESK, DISCHARGE, [PRE, post, LATE], SPO2, policy, UTC)
    assert ("40-min post-dose BP" not in missing) is complete


def test_esketamine_complete_monitoring(policy: Policy) -> None:
    bps = [PRE, ESK.start + timedelta(minutes=40), LATE]
    assert monitoring_missing(ESK, DISCHARGE, bps, SPO2, policy, UTC) == []


def test_esketamine_missing_items_are_listed(policy: Policy) -> None:
    yesterday = at("2026-11-19T14:50:00+00:00")  # not the same day: no pre-dose BP
    missing = monitoring_missing(ESK, DISCHARGE, [yesterday], [], policy, UTC)
    assert missing == ["pre-dose BP", "40-min post-dose BP", "pre-discharge BP", "SpO2"]


def test_readings_after_discharge_do_not_count(policy: Policy) -> None:
    after = DISCHARGE + timedelta(minutes=5)
    bps = [PRE, ESK.start + timedelta(minutes=40), after]
    missing = monitoring_missing(ESK, DISCHARGE, bps, [after], policy, UTC)
    assert missing == ["pre-discharge BP", "SpO2"]


def test_ketamine_needs_pre_and_post_dose_bp(policy: Policy) -> None:
    assert monitoring_missing(KET, DISCHARGE, [PRE], [], policy, UTC) == ["post-dose BP"]
    post = KET.start + timedelta(minutes=30)
    assert monitoring_missing(KET, DISCHARGE, [PRE, post], [], policy, UTC) == []


# ---- fasting ---------------------------------------------------------------------------------


def test_fasts_by_drug(policy: Policy) -> None:
    assert fasts("esketamine", policy) == (120, 30)
    assert fasts("ketamine", policy) == (240, None)
    assert fasts("ketamine", with_values(policy, ketamine_clear_liquid_rule=True)) == (240, 120)
    assert fasts(None, policy) == (240, 30)  # drug unknown: the stricter of each


# ---- through the evaluator -------------------------------------------------------------------


def evaluate(
    evaluator: RuleEvaluator, settings: Settings, **case: Any
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    loaded = Case.model_validate({"description": "test", **case})
    request = CdsRequest.model_validate(build_request(loaded, EXAMPLES))
    data = gather_sync(request, settings)
    now = case_now(loaded)
    result = evaluator.evaluate(
        service_id=loaded.service, context=dict(request.context), data=data, now=now
    )
    # Summary and detail: what the clinician reads.
    summaries = {
        c.source.topic.code: f"{c.summary}\n{c.detail}" for c in result.cards if c.source.topic
    }
    facts = evaluator.facts_for(loaded.service, dict(request.context), data, now)
    return summaries, facts


def discharge(patient: str) -> dict[str, Any]:
    return {"service": "kap-encounter-discharge", "patient": patient, "encounter_id": "enc-dosing"}


@pytest.fixture(scope="module")
def utc() -> tuple[RuleEvaluator, Settings]:
    settings = Settings(_env_file=None)
    return build_evaluator(settings), settings


def test_clearance_in_driving_card_summary(utc: tuple[RuleEvaluator, Settings]) -> None:
    ket, _ = evaluate(*utc, **discharge("dosing-day-ketamine"))
    esk, _ = evaluate(*utc, **discharge("dosing-day-esketamine"))
    assert "until 21 Nov 2026 15:40 UTC" in ket["KAP-DRV-001"]
    assert "until 21 Nov 2026 15:05 UTC" in esk["KAP-DRV-001"]


def test_label_only_policy_gives_next_morning_on_the_card(tmp_path: Path) -> None:
    site = tmp_path / "site-policy.yaml"
    site.write_text("driving_24h_all_routes: false\n", encoding="utf-8")
    settings = Settings(_env_file=None, policy_file=site)
    summaries, _ = evaluate(
        build_evaluator(settings), settings, **discharge("dosing-day-esketamine")
    )
    assert "until 21 Nov 2026 06:00 UTC" in summaries["KAP-DRV-001"]


def test_facility_time_zone_on_the_card() -> None:
    settings = Settings(_env_file=None, facility_timezone="America/New_York")
    summaries, facts = evaluate(
        build_evaluator(settings), settings, **discharge("dosing-day-esketamine")
    )
    # Last device 15:05 UTC = 10:05 EST; + 24 h is later than 06:00 the next local morning.
    assert "until 21 Nov 2026 10:05 EST" in summaries["KAP-DRV-001"]
    session_fact = next(f for f in facts if f["t"] == "dosing_session")
    assert session_fact["start_display"] == "20 Nov 2026 10:00 EST"
    assert session_fact["observe_until_display"] == "20 Nov 2026 12:00 EST"


def test_dosing_session_fact_on_the_base_patients(utc: tuple[RuleEvaluator, Settings]) -> None:
    _, facts = evaluate(*utc, **discharge("dosing-day-esketamine"))
    fact = next(f for f in facts if f["t"] == "dosing_session")
    assert fact["minutes_since_start"] == 130
    assert fact["stability_documented"] is True
    assert "monitoring_missing" not in fact  # complete: the field is absent
    _, facts = evaluate(*utc, **discharge("dosing-day-ketamine"))
    fact = next(f for f in facts if f["t"] == "dosing_session")
    assert (fact["minutes_since_end"], fact["post_dose_vitals"]) == (65, True)


def test_fasting_stop_times_on_the_booking_card(utc: tuple[RuleEvaluator, Settings]) -> None:
    appointment = {
        "resourceType": "Appointment",
        "id": "appt",
        "status": "booked",
        "serviceType": [
            {"coding": [{"system": "urn:kap-cds:appointment-type", "code": "kap-dosing"}]}
        ],
        "start": "2026-11-27T09:30:00+00:00",
        "participant": [{"actor": {"reference": "Patient/pat-eligible"}, "status": "accepted"}],
    }
    summaries, facts = evaluate(
        *utc, service="kap-appointment-book", order=None, appointment=appointment
    )
    intake = next(f for f in facts if f["t"] == "intake")
    assert intake["food_stop_display"] == "27 Nov 2026 05:30 UTC"
    assert intake["liquid_stop_display"] == "27 Nov 2026 09:00 UTC"
    # A week ahead the clock times are still ahead: shown beside the relative instruction.
    assert "nothing to eat for 4 h and nothing to drink for 30 min" in summaries["KAP-FAST-001"]
    assert "no food after 27 Nov 2026 05:30 UTC" in summaries["KAP-FAST-001"]


def test_clear_liquid_rule_when_the_site_adopts_it(tmp_path: Path) -> None:
    site = tmp_path / "site-policy.yaml"
    site.write_text("ketamine_clear_liquid_rule: true\n", encoding="utf-8")
    settings = Settings(_env_file=None, policy_file=site)
    evaluator = build_evaluator(settings)
    liquid = {
        "resourceType": "Observation",
        "id": "last-liquid",
        "status": "final",
        "code": {"coding": [{"system": "urn:kap-cds:obs", "code": "last-liquid-intake"}]},
        "subject": {"reference": "Patient/pat-eligible"},
        "effectiveDateTime": "2026-11-20T14:45:00+00:00",
        "valueDateTime": "2026-11-20T13:01:00+00:00",  # 1 h 59 min before the 15:00 dose
    }
    summaries, _ = evaluate(
        evaluator,
        settings,
        service="kap-encounter-start",
        patient="dosing-day-ketamine",
        encounter_id="enc-dosing",
        resources=[liquid],
    )
    assert "Last liquid 1.98 h" in summaries["KAP-FAST-002"]
    summaries, _ = evaluate(evaluator, settings)  # first ketamine order of a course
    # Signed at the planned dose time: the stop times have passed, so none is shown.
    assert "no clear liquids for 2 h before the dose" in summaries["KAP-FAST-001"]
    assert " after 20 Nov 2026" not in summaries["KAP-FAST-001"]


def test_monitoring_reads_the_session_day_only(utc: tuple[RuleEvaluator, Settings]) -> None:
    """A BP from last year (here not even valid FHIR) cannot change a session's monitoring:
    it is neither read nor validated, so it is not on the data card either."""
    old_bp = {
        "resourceType": "Observation",
        "id": "bp-last-year",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/pt-esk"},
        "effectiveDateTime": "2025-11-20T10:00:00Z",
        "component": {"not": "a list"},
    }
    case = {**discharge("dosing-day-esketamine"), "resources": [old_bp]}
    _, facts = evaluate(*utc, **case)
    fact = next(f for f in facts if f["t"] == "dosing_session")
    assert "monitoring_missing" not in fact
    assert not any(f.get("key") == "Observation/bp-last-year" for f in facts)
