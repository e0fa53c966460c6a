"""The ``bp`` fact: the newest usable blood pressure at or before T0 (catalog 3.2, KAP-CI-010/011/
012).

A reading is a BP panel (VS-BP-PANEL) with systolic and diastolic components, or a standalone
systolic and a standalone diastolic observation taken within 5 minutes of each other. The newest
reading wins whatever its value, so a normal re-measurement after rest supersedes a high one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cds.facts.context import FactContext
from cds.facts.fhir import Resource, days_between, display_time, ref
from cds.facts.labs import Candidate, candidates, coded_in

Fact = dict[str, Any]

PAIR_WINDOW = timedelta(minutes=5)
_VALUESETS = ("VS-BP-PANEL", "VS-BP-SYSTOLIC", "VS-BP-DIASTOLIC")
_MMHG = {"mm[hg]", "mmhg", "mm hg", "millimeter of mercury", ""}
_KPA_TO_MMHG = 7.50062


@dataclass(frozen=True)
class Reading:
    sbp: float
    dbp: float
    at: datetime
    ref: str


def mmhg(value: Any) -> float | None:
    """A Quantity in mm[Hg] (kPa converted); None when it is not a pressure we can read.
    A missing unit is taken as mmHg: no other unit gives plausible values in that range."""
    if not isinstance(value, dict) or not isinstance(value.get("value"), int | float):
        return None
    unit = str(value.get("code") or value.get("unit") or "").strip().lower()
    # One decimal: device exports carry long floats (169.1727845...) that cards cannot show.
    if unit in _MMHG:
        return round(float(value["value"]), 1)
    if unit == "kpa":
        return round(float(value["value"]) * _KPA_TO_MMHG, 1)
    return None


def _components(observation: Resource, ctx: FactContext) -> tuple[float | None, float | None]:
    sbp = dbp = None
    for component in observation.get("component") or ():
        if not isinstance(component, dict):
            continue
        if coded_in(component.get("code"), ctx, "VS-BP-SYSTOLIC"):
            sbp = mmhg(component.get("valueQuantity"))
        elif coded_in(component.get("code"), ctx, "VS-BP-DIASTOLIC"):
            dbp = mmhg(component.get("valueQuantity"))
    return sbp, dbp


def _reading(candidate: Candidate, ctx: FactContext) -> Reading | None:
    """A complete reading from a panel, or None."""
    if candidate.vs_id != "VS-BP-PANEL":
        return None
    sbp, dbp = _components(candidate.resource, ctx)
    if sbp is None or dbp is None:
        return None
    return Reading(sbp, dbp, candidate.at, ref(candidate.resource))


def _paired(systolic: Candidate, diastolics: list[Candidate], ctx: FactContext) -> Reading | None:
    """A standalone systolic with the closest usable diastolic taken within 5 minutes."""
    sbp = mmhg(systolic.resource.get("valueQuantity"))
    if sbp is None:
        return None
    near = sorted(
        (d for d in diastolics if abs(d.at - systolic.at) <= PAIR_WINDOW),
        key=lambda d: abs(d.at - systolic.at),
    )
    for diastolic in near:
        dbp = mmhg(diastolic.resource.get("valueQuantity"))
        if dbp is not None and ctx.valid(diastolic.resource):
            return Reading(
                sbp,
                dbp,
                max(systolic.at, diastolic.at),
                f"{ref(systolic.resource)}, {ref(diastolic.resource)}",
            )
    return None


def measured_until(ctx: FactContext) -> datetime:
    """The latest time a reading may have: T0, or at encounter-start the encounter's first
    dose (else the request's arrival) — a BP charted minutes after the encounter opened but
    before any dose is the pre-dose BP."""
    plan = ctx.plan
    if ctx.phase == "session" and plan is not None and plan.pre_dose_until is not None:
        return plan.pre_dose_until
    return ctx.t0


def _complete(
    candidate: Candidate, diastolics: list[Candidate], ctx: FactContext
) -> Reading | None:
    if candidate.vs_id == "VS-BP-PANEL":
        return _reading(candidate, ctx)
    return _paired(candidate, diastolics, ctx)


def readings(ctx: FactContext, lookback_days: float) -> list[Reading]:
    """Every complete, valid reading in the look-back up to T0, newest first."""
    found = candidates(ctx, _VALUESETS, lookback_days=lookback_days)
    diastolics = [c for c in found if c.vs_id == "VS-BP-DIASTOLIC"]
    return [
        reading
        for candidate in found
        if candidate.vs_id != "VS-BP-DIASTOLIC"
        and (reading := _complete(candidate, diastolics, ctx)) is not None
        and ctx.valid(candidate.resource)
    ]


def newest_reading(ctx: FactContext) -> Reading | None:
    found = candidates(ctx, _VALUESETS, until=measured_until(ctx))  # newest first, unvalidated
    diastolics = [c for c in found if c.vs_id == "VS-BP-DIASTOLIC"]
    for candidate in found:
        if candidate.vs_id == "VS-BP-DIASTOLIC":
            continue  # paired from its systolic
        if candidate.vs_id == "VS-BP-PANEL":
            reading = _reading(candidate, ctx)
        else:
            reading = _paired(candidate, diastolics, ctx)
        # Validate only what would be used; an invalid newest reading falls back to an older one
        # (and is reported as a data gap by ctx.valid).
        if reading is not None and ctx.valid(candidate.resource):
            return reading
    return None


def build(ctx: FactContext) -> list[Fact]:
    reading = newest_reading(ctx)
    if reading is None:
        return []
    local_day = ctx.t0.astimezone(ctx.tz).date()
    return [
        {
            "t": "bp",
            "sbp": reading.sbp,
            "dbp": reading.dbp,
            "days_ago": max(0.0, days_between(reading.at, ctx.t0)),
            # Readings after the pre-dose cut-off never reach here, so "same day" means earlier
            # today, before the dose.
            "same_day": reading.at.astimezone(ctx.tz).date() == local_day,
            "date_display": display_time(reading.at, ctx.tz),
            "ref": reading.ref,
        }
    ]
