"""``procedure`` facts: completed Procedures that matter to the rules (e.g. thyroid ablation).

Only ``completed`` Procedures count (preparation, in-progress, not-done, stopped, on-hold,
entered-in-error and unknown do not). A Procedure gives one fact per value set its code matches,
plus one copy with ``after_onset_of`` for each condition value set whose *active* Conditions all
began (onset, else recordedDate) on or before the procedure date. That lets a rule say "no
thyroidectomy after the hyperthyroidism began" (KAP-CI-016) without comparing two facts.
An undated Procedure, or one next to an undated active Condition, is never "after onset".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cds.facts.clinical import build_conditions
from cds.facts.context import FactContext
from cds.facts.fhir import Resource, days_between, display_date, parse_time, ref

Fact = dict[str, Any]


def build(ctx: FactContext) -> list[Fact]:
    completed = [p for p in ctx.resources("Procedure") if p.get("status") == "completed"]
    if not completed:
        return []
    facts: list[Fact] = []
    onsets: dict[str, float | None] | None = None
    for procedure in completed:
        # Procedures match on codes only, never on drug names.
        matched = sorted(ctx.coded_in(procedure.get("code")))
        if not matched or not ctx.valid(procedure):
            continue
        if onsets is None:
            onsets = _newest_active_onsets(ctx)
        when = _performed(procedure, ctx)
        days_ago = days_between(when, ctx.t0) if when else None
        base = {
            "t": "procedure",
            "days_ago": days_ago,
            "ref": ref(procedure),
            "date_display": display_date(when, ctx.tz) if when else None,
        }
        for vs_id in matched:
            facts.append({**base, "vs": vs_id})
            if days_ago is None:
                continue
            facts += [
                {**base, "vs": vs_id, "after_onset_of": condition_vs}
                for condition_vs, onset_days_ago in onsets.items()
                if onset_days_ago is not None and days_ago <= onset_days_ago
            ]
    return facts


def _newest_active_onsets(ctx: FactContext) -> dict[str, float | None]:
    """Per condition value set: days since the newest onset among its active Conditions
    (None when one of them has no date, so nothing can be "after" it)."""
    newest: dict[str, float | None] = {}
    for fact in build_conditions(ctx):
        vs_id, days = fact["vs"], fact.get("onset_days_ago")
        if not fact.get("active") or (vs_id in newest and newest[vs_id] is None):
            continue
        if not ctx.confirm(fact["ref"]):  # this fact decides without a rule matching it
            continue
        if days is None:
            newest[vs_id] = None
        else:
            previous = newest.get(vs_id)
            newest[vs_id] = days if previous is None else min(previous, days)
    return newest


def _performed(procedure: Resource, ctx: FactContext) -> datetime | None:
    moment = parse_time(procedure.get("performedDateTime"), ctx.tz)
    period = procedure.get("performedPeriod")
    if moment or not isinstance(period, dict):
        return moment
    return parse_time(period.get("end") or period.get("start"), ctx.tz)
