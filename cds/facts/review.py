"""The ``exposure_review`` fact (KAP-INT-008): the long-term exposure review was documented
recently, so the reminder can stay quiet for ``long_term_review_quiet_days``.

The review the card asks for is documented by

* an Observation (final) or completed Procedure coded in VS-EXPOSURE-REVIEW: the local
  ``long-term-exposure-review`` code, or the review note or order a site maps there; or
* the screenings themselves, in standard data: a urinalysis (VS-URINALYSIS) and a cognitive
  screening score (VS-COGNITIVE-SCREEN), both within the window. The review counts from the
  older of the two, when both had been done.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cds.facts.context import FactContext
from cds.facts.fhir import Resource, days_between, display_date, parse_time, ref
from cds.facts.labs import candidates, valid_newest_first

Fact = dict[str, Any]


def build(ctx: FactContext) -> list[Fact]:
    if ctx.plan is None:
        return []
    window = ctx.policy.number("long_term_review_quiet_days")
    found = _documented_review(ctx, window) or _screenings(ctx, window)
    if found is None:
        return []
    at, what, resource = found
    return [
        {
            "t": "exposure_review",
            "days_ago": days_between(at, ctx.t0),
            "date_display": display_date(at, ctx.tz),
            "source": what,
            "ref": ref(resource),
        }
    ]


def _documented_review(ctx: FactContext, window: float) -> tuple[datetime, str, Resource] | None:
    observed = next(valid_newest_first(ctx, candidates(ctx, ("VS-EXPOSURE-REVIEW",), window)), None)
    best = (observed.at, "long-term exposure review", observed.resource) if observed else None
    earliest = ctx.t0 - timedelta(days=window)
    for procedure in ctx.with_code("Procedure", "VS-EXPOSURE-REVIEW"):
        if procedure.get("status") != "completed":
            continue
        period = procedure.get("performedPeriod") or {}
        at = parse_time(procedure.get("performedDateTime") or period.get("end"), ctx.tz)
        if at is None or not earliest <= at <= ctx.t0 or (best and at <= best[0]):
            continue
        if ctx.valid(procedure):
            best = (at, "long-term exposure review", procedure)
    return best


def _screenings(ctx: FactContext, window: float) -> tuple[datetime, str, Resource] | None:
    urinalysis = next(valid_newest_first(ctx, candidates(ctx, ("VS-URINALYSIS",), window)), None)
    cognition = next(
        valid_newest_first(ctx, candidates(ctx, ("VS-COGNITIVE-SCREEN",), window)), None
    )
    if urinalysis is None or cognition is None:
        return None
    older = min((urinalysis, cognition), key=lambda c: c.at)
    return older.at, "urinalysis and cognitive screening", older.resource
