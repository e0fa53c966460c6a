"""The ``history`` fact: the patient's KAP sessions before T0, and the course T0 falls in.

Catalog 3.4 and 4.4: intervals are measured between session *starts* after aggregation, and the
previous session is never the one being given now. So the doses of the planned session itself
(an IM supplemental dose ordered minutes after the first, or today's doses at encounter-start
and encounter-discharge) are dropped before anything is counted.

``dosing_history`` is shared with the quality facts, which relate visits and scores to the
previous session and to the course start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cds.facts.calendar import calendar_days, same_day
from cds.facts.context import FactContext
from cds.facts.drugs import ESKETAMINE_VS, KETAMINE_VS, KapDrugs
from cds.facts.fhir import display_time, hours_between, parse_time
from cds.facts.sessions import Session, aggregate, current_course, kap_doses

Fact = dict[str, Any]

_DAYS_PER_MONTH = 365.25 / 12
_ESKETAMINE_START_MG = 56  # label: day 1 is 56 mg; 84 mg only after it (REF-01d)


@dataclass(frozen=True)
class History:
    previous: list[Session]  # sessions before the planned one, oldest first
    course: list[Session]  # previous sessions of the course T0 falls in (empty: new course)
    t0: datetime

    @property
    def last(self) -> Session | None:
        return self.previous[-1] if self.previous else None

    @property
    def course_start(self) -> datetime:
        """First session of the current course; the planned session itself when it starts one."""
        return self.course[0].start if self.course else self.t0


def dosing_history(ctx: FactContext) -> History:
    return ctx.cached("dosing_history", lambda: _dosing_history(ctx))


def _dosing_history(ctx: FactContext) -> History:
    drugs = KapDrugs(ctx.valuesets[KETAMINE_VS], ctx.valuesets[ESKETAMINE_VS])
    window = ctx.policy.number("session_window_minutes")
    sessions = aggregate(kap_doses(ctx, drugs, until=ctx.t0), window)
    previous = [s for s in sessions if not _is_planned_session(s, ctx, window)]
    reset = ctx.policy.number("course_reset_days")
    course = current_course(previous, reset)
    if course and ctx.t0 - course[-1].start > timedelta(days=reset):
        course = []  # the gap before T0 is longer than a course reset: T0 starts a new course
    return History(previous, course, ctx.t0)


def _is_planned_session(session: Session, ctx: FactContext, window: float) -> bool:
    """Doses that belong to the session the request is about, not to an earlier one.

    Chart open (patient-view) plans nothing, so every session is history there. Otherwise a
    session is the planned one when it is charted on this request's encounter, or when its first
    dose lies within the aggregation window before the planned start — that start being the
    encounter's start at encounter-discharge, where T0 is the discharge time. A standing course
    order with no planned first dose, signed on a day a session was already given, is that
    day's treatment going on as a course: signing it is not a second session."""
    if ctx.phase == "view":
        return False
    if ctx.plan is not None and ctx.plan.standing and same_day(session.start, ctx.t0, ctx.tz):
        return True
    encounter = ctx.plan.encounter if ctx.plan else None
    encounter_id = str(encounter.get("id")) if encounter else None
    if encounter_id and any(d.encounter_id == encounter_id for d in session.doses):
        return True
    anchor = _planned_start(ctx)
    return anchor - session.start <= timedelta(minutes=window)


def _planned_start(ctx: FactContext) -> datetime:
    encounter = ctx.plan.encounter if ctx.plan else None
    period = (encounter or {}).get("period") or {}
    start = parse_time(period.get("start"), ctx.tz)
    return start if start and start <= ctx.t0 else ctx.t0


def build(ctx: FactContext) -> list[Fact]:
    if ctx.plan is None:
        return []
    history = dosing_history(ctx)
    return [
        {
            "t": "history",
            **_last_session(history, ctx),
            **_course(history, ctx),
            **_counts(history, ctx),
        }
    ]


def _last_session(history: History, ctx: FactContext) -> Fact:
    last = history.last
    if last is None:
        return {"sessions_total": 0}
    return {
        "sessions_total": len(history.previous),
        "hours_since_last": hours_between(last.start, ctx.t0),
        "days_since_last": calendar_days(last.start, ctx.t0, ctx.tz),
        "last_display": display_time(last.start, ctx.tz),
        "last_drug": last.drug,
    }


def _course(history: History, ctx: FactContext) -> Fact:
    course_days = calendar_days(history.course_start, ctx.t0, ctx.tz)
    return {
        "new_course": not history.course,
        "course_sessions": len(history.course),
        "maintenance_gap_days": _maintenance_gap(history, ctx),
        "course_days": course_days,
        "course_week": int(course_days // 7) + 1,
        "course_had_56mg": any(
            s.drug == "esketamine" and s.mg is not None and s.mg >= _ESKETAMINE_START_MG
            for s in history.course
        ),
        "course_months": round(course_days / _DAYS_PER_MONTH, 1),
    }


def _maintenance_gap(history: History, ctx: FactContext) -> int | None:
    """Calendar days between the last two sessions once a booster has followed the induction:
    the maintenance schedule the patient is on (e.g. 14-21 days for 2-3-weekly). Absent while
    no booster has been given: the gap inside the induction says nothing about maintenance."""
    if len(history.course) < ctx.policy.number("induction_sessions") + 1:
        return None
    return calendar_days(history.course[-2].start, history.course[-1].start, ctx.tz)


def _counts(history: History, ctx: FactContext) -> Fact:
    """Sessions in the last 7/42/365 calendar days (T0's local date and the days before it):
    a weekly session an hour earlier than last week's is not two sessions in one week."""
    # The planned session counts toward the frequency limits; chart open plans no session.
    planned = 0 if ctx.phase == "view" else 1
    return {
        f"sessions_{days}d": planned
        + sum(1 for s in history.previous if calendar_days(s.start, ctx.t0, ctx.tz) < days)
        for days in (7, 42, 365)
    }
