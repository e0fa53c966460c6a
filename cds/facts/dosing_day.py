"""The dosing day: ``dosing_session``, ``intake`` and ``escort`` facts (catalog 4.2, 4.3, QUAL-008).

* ``dosing_session`` (encounter-start/-discharge): today's KAP administrations — those of this
  encounter or on T0's local day — aggregated into sessions (catalog 3.4). The newest session is
  described; the driving clearance is the latest over all of the day's sessions.
* ``intake`` (order, book, session): last solid / liquid intake recorded on the dosing day, and
  the clock times the patient must stop eating and drinking, for the plan's drug.
* ``escort``: a confirmed ride home for the dosing day.

All times are compared and shown in the facility time zone: "the next day" and "today" are local
calendar days, never UTC ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cds.facts import stability
from cds.facts.context import FactContext
from cds.facts.drugs import KapDrugs
from cds.facts.fhir import (
    Resource,
    codings,
    display_date,
    display_time,
    hours_between,
    minutes_between,
    parse_time,
    ref,
    reference_id,
)
from cds.facts.sessions import Session, aggregate, kap_doses
from cds.facts.triage import is_kap_appointment
from cds.ruleset.policy import Policy

Fact = dict[str, Any]

USABLE = {"final", "amended", "corrected"}  # catalog 3.2 "Observation usable"
_COUNTED_APPOINTMENTS = {"booked", "arrived", "checked-in", "fulfilled"}
# HL7 v3 ParticipationType ESC "Escort": the standard participant type for the person who takes
# the patient home, so an EHR can record the escort on the dosing Appointment itself.
_ESCORT_PARTICIPANT = ("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "ESC")
_SYSTOLIC = ("http://loinc.org", "8480-6")


def build(ctx: FactContext) -> list[Fact]:
    return build_dosing_session(ctx) + build_intake(ctx) + build_escort(ctx)


# ---- observations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Obs:
    when: datetime
    resource: Resource


def observations(ctx: FactContext, *vs_ids: str, since: datetime | None = None) -> list[Obs]:
    """Usable observations coded in any of the value sets, oldest first; with ``since``, only
    those from then on (older ones are then neither read nor validated)."""
    found = []
    candidates = {id(o): o for vs in vs_ids for o in ctx.with_code("Observation", vs)}
    for observation in candidates.values():
        if observation.get("status") not in USABLE:
            continue
        when = ctx.observed_at(observation)
        if when and (since is None or when >= since) and ctx.valid(observation):
            found.append(Obs(when, observation))
    return sorted(found, key=lambda o: o.when)


def _has_systolic(observation: Resource) -> bool:
    """A BP observation counts only with a systolic value (a panel with empty components is a
    placeholder the EHR created, not a measurement)."""
    if _is_systolic(observation.get("code")) and observation.get("valueQuantity"):
        return True
    return any(
        _is_systolic(c.get("code")) and c.get("valueQuantity")
        for c in observation.get("component") or ()
        if isinstance(c, dict)
    )


def _is_systolic(concept: Any) -> bool:
    return any((s, c) == _SYSTOLIC for s, c, _d in codings(concept))


def bp_times(ctx: FactContext, since: datetime | None = None) -> list[datetime]:
    return [
        o.when
        for o in observations(ctx, "VS-BP-PANEL", "VS-BP-SYSTOLIC", since=since)
        if _has_systolic(o.resource)
    ]


def _local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def _day_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz)


# ---- dosing_session -----------------------------------------------------------------------


def _drugs(ctx: FactContext) -> KapDrugs:
    return KapDrugs(ctx.valuesets["VS-KETAMINE"], ctx.valuesets["VS-ESKETAMINE"])


def todays_sessions(ctx: FactContext) -> list[Session]:
    """The KAP sessions of this encounter or of T0's local day, up to T0."""
    encounter_id = str(ctx.context.get("encounterId") or "")
    day = _local_day(ctx.t0, ctx.tz)
    doses = [
        d
        for d in kap_doses(ctx, _drugs(ctx), until=ctx.t0)
        if (encounter_id and d.encounter_id == encounter_id) or _local_day(d.start, ctx.tz) == day
    ]
    return aggregate(doses, ctx.policy.number("session_window_minutes"))


def clearance(session: Session, policy: Policy, tz: ZoneInfo) -> datetime:
    """KAP-DRV-001: when the patient may drive again after one session.

    Ketamine: end + driving_hours (seed S-002, 24 h). Esketamine: the label's "next day after a
    restful sleep" = the next local calendar day at driving_next_day_hour; when the program
    applies the seed's 24 h rule to every route (driving_24h_all_routes) the later of the two.
    """
    after_hours = session.end + timedelta(hours=policy.number("driving_hours"))
    if session.drug != "esketamine":
        return after_hours
    next_day = _local_day(session.end, tz) + timedelta(days=1)
    morning = _day_start(next_day, tz) + timedelta(hours=policy.number("driving_next_day_hour"))
    return max(morning, after_hours) if policy.flag("driving_24h_all_routes") else morning


def observe_until(session: Session, policy: Policy) -> datetime:
    """Earliest discharge: esketamine from the first device (label, REMS form: "total time from
    1st device"); ketamine from the end of the session (POLICY)."""
    if session.drug == "esketamine":
        return session.start + timedelta(minutes=policy.number("esketamine_observation_minutes"))
    return session.end + timedelta(minutes=policy.number("ketamine_observation_minutes"))


def monitoring_missing(
    session: Session,
    t0: datetime,
    bps: Iterable[datetime],
    spo2: Iterable[datetime],
    policy: Policy,
    tz: ZoneInfo,
) -> list[str]:
    """KAP-QUAL-008: monitoring items not documented for a session ending at T0 (discharge).

    Esketamine (REMS monitoring form): BP before the first device (same local day), BP 30-50 min
    after it (the label's "~40 min", window POLICY), a pre-discharge BP after that window, and a
    pulse oximetry reading during monitoring. Ketamine: a pre-dose and a post-dose BP.
    """
    start = session.start
    day = _local_day(start, tz)
    times = [b for b in bps if b <= t0]
    pre = any(b <= start and _local_day(b, tz) == day for b in times)
    post = [b for b in times if b > start]
    if session.drug != "esketamine":
        return [item for item, ok in (("pre-dose BP", pre), ("post-dose BP", bool(post))) if not ok]
    window_from = start + timedelta(minutes=policy.number("post_dose_bp_from_minutes"))
    window_to = start + timedelta(minutes=policy.number("post_dose_bp_to_minutes"))
    checks = (
        ("pre-dose BP", pre),
        ("40-min post-dose BP", any(window_from <= b <= window_to for b in post)),
        ("pre-discharge BP", any(b > window_to for b in post)),
        ("SpO2", any(start <= s <= t0 for s in spo2)),
    )
    return [item for item, ok in checks if not ok]


def build_dosing_session(ctx: FactContext) -> list[Fact]:
    if ctx.plan is None or ctx.phase not in ("session", "discharge"):
        return []
    sessions = todays_sessions(ctx)
    if not sessions:
        return []
    session, tz, policy = sessions[-1], ctx.tz, ctx.policy
    # Monitoring reads the session day only (monitoring_missing): a chart's years of BPs are
    # neither read nor validated.
    day_start = datetime.combine(_local_day(session.start, tz), time(), tzinfo=tz)
    bps = bp_times(ctx, since=day_start)
    spo2 = [o.when for o in observations(ctx, "VS-SPO2", since=day_start)]
    missing = monitoring_missing(session, ctx.t0, bps, spo2, policy, tz)
    stable = stability.assess(ctx, session.start, observe_until(session, policy))
    return [
        {
            "t": "dosing_session",
            "drug": session.drug,
            "route": session.route,
            "start_display": display_time(session.start, tz),
            "end_display": display_time(session.end, tz),
            "minutes_since_start": minutes_between(session.start, ctx.t0),
            "minutes_since_end": minutes_between(session.end, ctx.t0),
            "observe_until_display": display_time(observe_until(session, policy), tz),
            "clearance_display": display_time(max(clearance(s, policy, tz) for s in sessions), tz),
            "stability_documented": stable.documented,
            "stability_display": stable.display,
            "post_dose_vitals": any(session.start < b <= ctx.t0 for b in bps),
            "monitoring_missing": ", ".join(missing) or None,  # absent = complete
            "at_home": session.at_home,
        }
    ]


# ---- intake -------------------------------------------------------------------------------


def fasts(drug: str | None, policy: Policy) -> tuple[float, float | None]:
    """(food, liquid) fasting minutes before a dose of the drug; liquid None = no liquid fast.

    Esketamine: label values. Ketamine: the seed's food fast, and clear liquids only when the
    site adopts the ASA-style rule. Unknown drug (a booking with no order yet): the stricter
    value of each, so the instruction is safe for either drug.
    """
    esk_food = policy.number("esketamine_food_fast_minutes")
    esk_liquid = policy.number("esketamine_liquid_fast_minutes")
    ket_food = policy.number("ketamine_food_fast_hours") * 60
    ket_liquid = (
        policy.number("ketamine_clear_liquid_hours") * 60
        if policy.flag("ketamine_clear_liquid_rule")
        else None
    )
    if drug == "esketamine":
        return esk_food, esk_liquid
    if drug == "ketamine":
        return ket_food, ket_liquid
    return max(esk_food, ket_food), max(esk_liquid, ket_liquid or 0)


def _intake_time(ctx: FactContext, vs_id: str, day: date) -> tuple[datetime, Resource] | None:
    """The intake time (valueDateTime) of the newest such observation recorded on the day."""
    for obs in reversed(observations(ctx, vs_id)):
        moment = parse_time(obs.resource.get("valueDateTime"), ctx.tz)
        if moment and _local_day(obs.when, ctx.tz) == day:
            return moment, obs.resource
    return None


def _intake_fields(
    prefix: str,
    found: tuple[datetime, Resource] | None,
    fast_minutes: float | None,
    ctx: FactContext,
) -> Fact:
    if found is None:
        return {}
    moment = found[0]
    fields: Fact = {
        f"{prefix}_minutes_before": minutes_between(moment, ctx.t0),
        f"{prefix}_hours_before": hours_between(moment, ctx.t0),
        f"{prefix}_display": display_time(moment, ctx.tz),
    }
    if fast_minutes is not None:
        ok_key = "food_ok_display" if prefix == "solid" else "liquid_ok_display"
        fields[ok_key] = display_time(moment + timedelta(minutes=fast_minutes), ctx.tz)
    return fields


def _duration(minutes: float) -> str:
    """ "4 h", "90 min": how long before the dose, as a patient instruction says it."""
    if minutes >= 60 and minutes % 60 == 0:
        return f"{int(minutes // 60)} h"
    return f"{minutes:g} min"


def _stop_note(what: str, stop: datetime | None, ctx: FactContext) -> str:
    """A clock time only when it is still ahead: a stop time already past (or computed from the
    arrival time because no dose time is planned) would tell the patient nothing."""
    if stop is None or not ctx.planned_time or (ctx.now is not None and stop <= ctx.now):
        return ""
    return f" ({what} after {display_time(stop, ctx.tz)})"


_NOT_FASTING_TEXT = re.compile(r"^\s*(no|n|not fasting|not fasted|non[- ]?fasting)\s*\.?$", re.I)


def _says_not_fasting(observation: Resource, ctx: FactContext) -> bool:
    """A fasting status answered "no": a coded answer (VS-ANSWER-NO), false, or the words."""
    if observation.get("valueBoolean") is False:
        return True
    concept = observation.get("valueCodeableConcept")
    if concept is not None and ctx.in_valueset(concept, "VS-ANSWER-NO"):
        return True
    text = observation.get("valueString")
    if not isinstance(text, str) and isinstance(concept, dict):
        text = concept.get("text")
    return isinstance(text, str) and bool(_NOT_FASTING_TEXT.match(text))


def build_intake(ctx: FactContext) -> list[Fact]:
    plan = ctx.plan
    if plan is None or ctx.phase not in ("order", "book", "session"):
        return []
    day = _local_day(ctx.t0, ctx.tz)
    food, liquid = fasts(plan.drug, ctx.policy)
    solid = _intake_time(ctx, "VS-LAST-SOLID-INTAKE", day)
    drink = _intake_time(ctx, "VS-LAST-LIQUID-INTAKE", day)
    statuses_today = [
        o for o in observations(ctx, "VS-FASTING-STATUS") if _local_day(o.when, ctx.tz) == day
    ]
    status_today = bool(statuses_today)
    food_stop = ctx.t0 - timedelta(minutes=food)
    liquid_stop = ctx.t0 - timedelta(minutes=liquid) if liquid is not None else None
    fact: Fact = {
        "t": "intake",
        "documented_today": bool(solid or drink or status_today),
        "food_fast_display": _duration(food),
        "liquid_fast_display": _duration(liquid) if liquid is not None else None,
        "food_stop_note": _stop_note("no food", food_stop, ctx),
        "liquid_stop_note": _stop_note("no liquids", liquid_stop, ctx),
        "food_stop_display": display_time(ctx.t0 - timedelta(minutes=food), ctx.tz),
        "liquid_stop_display": (
            display_time(ctx.t0 - timedelta(minutes=liquid), ctx.tz) if liquid is not None else None
        ),
    }
    if statuses_today and _says_not_fasting(statuses_today[-1].resource, ctx):
        fact["not_fasting_display"] = display_time(statuses_today[-1].when, ctx.tz)
    fact |= _intake_fields("solid", solid, food, ctx)
    fact |= _intake_fields("liquid", drink, liquid, ctx)
    return [fact]


# ---- escort -------------------------------------------------------------------------------


def _previous_session_start(ctx: FactContext, day: date) -> datetime | None:
    """Start of the newest KAP session before the dosing day: an escort confirmed before it was
    for that session, not for this one."""
    doses = kap_doses(ctx, _drugs(ctx), until=_day_start(day, ctx.tz))
    return doses[-1].start if doses else None


def _escort_observation(ctx: FactContext, day: date) -> Fact | None:
    day_end = _day_start(day + timedelta(days=1), ctx.tz)
    earliest = _previous_session_start(ctx, day)
    for obs in reversed(observations(ctx, "VS-ESCORT-CONFIRMED")):
        if obs.resource.get("valueBoolean") is not True or obs.when >= day_end:
            continue
        if earliest is None or obs.when > earliest:
            return {
                "t": "escort",
                "date_display": display_date(obs.when, ctx.tz),
                "ref": ref(obs.resource),
            }
    return None


def _dosing_appointments(ctx: FactContext, day: date) -> list[Resource]:
    """The appointment being booked, and the KAP dosing appointments on the dosing day."""
    plan = ctx.plan
    found = [plan.appointment] if plan and plan.appointment else []
    encounter = (plan.encounter if plan else None) or {}
    linked = {reference_id(r) for r in encounter.get("appointment") or ()}
    for appointment in ctx.resources("Appointment"):
        start = parse_time(appointment.get("start"), ctx.tz)
        same_day = bool(start and _local_day(start, ctx.tz) == day)
        dosing = is_kap_appointment(appointment) or str(appointment.get("id")) in linked
        if same_day and dosing and appointment.get("status") in _COUNTED_APPOINTMENTS:
            found.append(appointment)
    return found


def _has_escort_participant(appointment: Resource) -> bool:
    for participant in appointment.get("participant") or ():
        if not isinstance(participant, dict) or participant.get("status") == "declined":
            continue
        if any(
            (s, c) == _ESCORT_PARTICIPANT
            for concept in participant.get("type") or ()
            for s, c, _d in codings(concept)
        ):
            return True
    return False


def build_escort(ctx: FactContext) -> list[Fact]:
    """A confirmed ride home: the local escort-confirmed observation (valueBoolean true) recorded
    on or before the dosing day and after the previous session, or an escort participant (v3
    ParticipationType ESC, not declined) on the dosing Appointment."""
    if ctx.plan is None:
        return []
    day = _local_day(ctx.t0, ctx.tz)
    observed = _escort_observation(ctx, day)
    if observed:
        return [observed]
    for appointment in _dosing_appointments(ctx, day):
        if _has_escort_participant(appointment):
            start = parse_time(appointment.get("start"), ctx.tz) or ctx.t0
            return [
                {
                    "t": "escort",
                    "date_display": display_date(start, ctx.tz),
                    "ref": ref(appointment),
                }
            ]
    return []
