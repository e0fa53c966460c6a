"""Calendar days in the facility zone, an order's planned start, and at-home evidence."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cds.facts.calendar import calendar_days, same_day
from cds.facts.context import FactContext
from cds.facts.plan import home_evidence, planned_time
from cds.pipeline_types import PatientData
from cds.ruleset.loader import LoadedRuleSet

LA = ZoneInfo("America/Los_Angeles")
UTC = ZoneInfo("UTC")
CATEGORY = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.mark.parametrize(
    ("earlier", "later", "zone", "days"),
    [
        ("2026-11-18T16:00:00+00:00", "2026-11-20T15:00:00+00:00", UTC, 2),  # 47 h, Wed -> Fri
        ("2026-11-19T06:00:00+00:00", "2026-11-20T15:00:00+00:00", UTC, 1),
        ("2026-11-19T06:00:00+00:00", "2026-11-20T15:00:00+00:00", LA, 2),  # Wed 22:00 local
        ("2026-10-23T17:00:00+00:00", "2026-11-20T15:00:00+00:00", UTC, 28),  # 27.9 days
        # across the end of daylight saving time (2026-11-01 in Los Angeles): 7 local days
        ("2026-10-29T16:00:00+00:00", "2026-11-05T17:00:00+00:00", LA, 7),
    ],
)
def test_calendar_days_are_local_dates(earlier: str, later: str, zone: ZoneInfo, days: int) -> None:
    assert calendar_days(_at(earlier), _at(later), zone) == days


def test_same_day_depends_on_the_zone() -> None:
    evening, morning = _at("2026-11-20T03:00:00+00:00"), _at("2026-11-20T17:00:00+00:00")
    assert same_day(evening, morning, UTC)
    assert not same_day(evening, morning, LA)


def _ctx(ruleset: LoadedRuleSet) -> FactContext:
    return FactContext(
        hook="order-sign",
        context={},
        data=PatientData({}),
        t0=_at("2026-11-20T15:00:00+00:00"),
        tz=UTC,
        policy=ruleset.policy,
        valuesets=ruleset.valuesets,
    )


def _order(timing: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    dosage: dict[str, Any] = {"text": "200 mg sublingual"}
    if timing is not None:
        dosage["timing"] = timing
    return {"resourceType": "MedicationRequest", "dosageInstruction": [dosage], **fields}


def test_planned_start_from_event_then_bounds_period(ruleset: LoadedRuleSet) -> None:
    ctx = _ctx(ruleset)
    bounds = {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk",
                         "boundsPeriod": {"start": "2026-11-23T10:00:00+00:00"}}}  # fmt: skip
    assert planned_time(_order(bounds), ctx) == _at("2026-11-23T10:00:00+00:00")
    both = {**bounds, "event": ["2026-11-21T09:00:00+00:00"]}
    assert planned_time(_order(both), ctx) == _at("2026-11-21T09:00:00+00:00")
    assert planned_time(_order({"repeat": {"frequency": 2, "period": 1}}), ctx) is None
    assert planned_time(_order(), ctx) is None


@pytest.mark.parametrize(
    ("order", "at_home"),
    [
        (_order(dispenseRequest={"quantity": {"value": 3, "unit": "device"}}), False),
        (_order(category=[{"coding": [{"system": CATEGORY, "code": "outpatient"}]}]), False),
        (_order(performer={"reference": "Patient/p1"}), False),  # self-administered in clinic
        (_order(category=[{"coding": [{"system": CATEGORY, "code": "community"}]}]), True),
        (_order(category=[{"coding": [{"system": "urn:kap-cds:flag", "code": "at-home"}]}]), True),
        (
            {
                "resourceType": "MedicationRequest",
                "dosageInstruction": [{"patientInstruction": "Take at home with your monitor"}],
            },
            True,
        ),
        (
            {
                "resourceType": "MedicationRequest",
                "dosageInstruction": [{"patientInstruction": "Hold under the tongue in clinic"}],
            },
            False,
        ),
    ],
)
def test_home_use_needs_positive_evidence(order: dict[str, Any], at_home: bool) -> None:
    assert (home_evidence(order) is not None) is at_home
