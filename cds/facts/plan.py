"""Find what a request is about (the plan) and its evaluation time T0.

T0 (docs/contracts.md "Evaluation time") is the planned dose time when the request carries
one — the order's ``dosageInstruction[0].timing.event[0]``, the appointment's ``start``, the
encounter's ``period.start`` — otherwise the time the request arrived. At encounter-discharge
T0 is the discharge time (``period.end``, else arrival): the driving and observation rules
measure from it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from cds.facts.calendar import same_day
from cds.facts.context import FactContext, Plan
from cds.facts.drugs import KapDrugs, medications_by_id, route_of
from cds.facts.fhir import Resource, codings, concept_text, parse_time, reference_id
from cds.facts.sessions import KapDose, aggregate, kap_doses
from cds.facts.triage import bundle_resources, is_kap_appointment, kap_orders

_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
_AT_HOME_FLAG = ("urn:kap-cds:flag", "at-home")
# Words of a patient instruction that place the dose at home ("take at home with your monitor").
_HOME_WORDS = re.compile(
    r"\b(at|from) home\b|\bhome[- ](use|dosing|session|administration)s?\b",
    re.IGNORECASE,
)


def _first_dosage(order: Resource) -> dict[str, Any]:
    dosages = order.get("dosageInstruction") or [{}]
    return dosages[0] if isinstance(dosages[0], dict) else {}


def _timing(order: Resource) -> dict[str, Any]:
    timing = _first_dosage(order).get("timing")
    return timing if isinstance(timing, dict) else {}


def _repeat(order: Resource) -> dict[str, Any]:
    repeat = _timing(order).get("repeat")
    return repeat if isinstance(repeat, dict) else {}


def planned_time(order: Resource, ctx: FactContext) -> datetime | None:
    """The order's first planned dose: ``timing.event[0]``, else the start of
    ``timing.repeat.boundsPeriod`` (a course order "twice weekly from Monday")."""
    events = _timing(order).get("event") or []
    if events:
        return parse_time(events[0], ctx.tz)
    bounds = _repeat(order).get("boundsPeriod")
    return parse_time(bounds.get("start"), ctx.tz) if isinstance(bounds, dict) else None


def _standing(order: Resource) -> bool:
    """A course order: doses on a repeating schedule (frequency per period), not one dose."""
    repeat = _repeat(order)
    count = repeat.get("count")
    return bool(repeat.get("period") or repeat.get("frequency")) and not (
        isinstance(count, int) and count <= 1
    )


def home_evidence(order: Resource) -> str | None:
    """What in the order says the patient takes it at home, in clinicians' words; None when
    nothing does. Positive evidence only: the local at-home flag, category ``community`` (FHIR:
    "administered or consumed by the patient in their home"), or a patient instruction that
    places the dose at home. A dispensed quantity is not such evidence (in-clinic SPRAVATO and
    sublingual orders carry one too), nor is self-administration (SPRAVATO and troches are
    self-administered in the clinic, under observation), nor category ``outpatient`` (FHIR:
    "an outpatient setting, e.g. a doctor's office")."""
    categories = [c for concept in order.get("category") or () for c in codings(concept)]
    if any((s, c) == _AT_HOME_FLAG for s, c, _d in categories):
        return "the order is flagged for at-home dosing"
    if any(s == _CATEGORY_SYSTEM and c == "community" for s, c, _d in categories):
        return "the order is for use in the community (at home)"
    if _HOME_WORDS.search(_instruction_text(order)):
        return "the patient instructions say the dose is taken at home"
    return None


def _instruction_text(order: Resource) -> str:
    parts: list[str] = []
    for dosage in order.get("dosageInstruction") or ():
        if not isinstance(dosage, dict):
            continue
        parts += [str(dosage.get("patientInstruction") or ""), str(dosage.get("text") or "")]
        parts += [concept_text(c) for c in dosage.get("additionalInstruction") or ()]
    return " ".join(parts)


def plan_from_order(order: Resource, drug: str, ctx: FactContext, now: datetime) -> Plan:
    planned = planned_time(order, ctx)
    evidence = home_evidence(order)
    return Plan(
        drug=drug,
        route=route_of(_first_dosage(order)),
        t0=planned or now,
        order=order,
        at_home=evidence is not None,
        home_evidence=evidence,
        # Signing a course order whose first dose is not given a time is not a dose now.
        standing=planned is None and _standing(order),
        timed=planned is not None,
    )


def active_kap_order(ctx: FactContext, drugs: KapDrugs) -> tuple[Resource, str] | None:
    """The patient's newest active KAP MedicationRequest, if any."""
    meds = medications_by_id(ctx.resources("Medication"))
    found = []
    for order in ctx.resources("MedicationRequest"):
        if order.get("status") in ("active", "draft") and order.get("intent") != "plan":
            drug = drugs.classify(order, meds)
            if drug:
                found.append((str(order.get("authoredOn") or ""), order, drug))
    if not found:
        return None
    _authored, order, drug = max(found, key=lambda item: item[0])
    return order, drug


def find_plan(ctx: FactContext, drugs: KapDrugs, now: datetime) -> Plan | None:
    """The plan for this request, or None when it is not about KAP (then: no cards)."""
    if ctx.hook in ("order-select", "order-sign"):
        orders = kap_orders(ctx.context, drugs)
        return plan_from_order(orders[0][0], orders[0][1], ctx, now) if orders else None
    if ctx.hook == "appointment-book":
        return _appointment_plan(ctx, drugs, now)
    if ctx.hook in ("encounter-start", "encounter-discharge"):
        return _encounter_plan(ctx, drugs, now)
    return _chart_plan(ctx, drugs, now)


def _appointment_plan(ctx: FactContext, drugs: KapDrugs, now: datetime) -> Plan | None:
    appointments = [
        r
        for r in bundle_resources(ctx.context.get("appointments"))
        if r.get("resourceType") == "Appointment"
    ]
    for appointment in appointments:
        if _appointment_kinds(appointment, ctx) & {"integration", "preparation"}:
            continue  # a therapy visit that points at the order is not a dose
        linked = _linked_order(appointment, ctx, drugs)
        if is_kap_appointment(appointment) or linked:
            planned = parse_time(appointment.get("start"), ctx.tz)
            start = planned or now
            order, drug = linked or active_kap_order(ctx, drugs) or (None, None)
            route = route_of(_first_dosage(order)) if order else "unknown"
            return Plan(
                drug=drug,
                route=route,
                t0=start,
                order=order,
                appointment=appointment,
                at_home=bool(order and home_evidence(order)),
                home_evidence=home_evidence(order) if order else None,
                timed=planned is not None,
            )
    return None


def _linked_order(
    appointment: Resource, ctx: FactContext, drugs: KapDrugs
) -> tuple[Resource, str] | None:
    orders = {str(o.get("id")): o for o in ctx.resources("MedicationRequest")}
    meds = medications_by_id(ctx.resources("Medication"))
    for reference in appointment.get("supportingInformation") or ():
        order = orders.get(reference_id(reference) or "")
        drug = drugs.classify(order, meds) if order else None
        if order and drug:
            return order, drug
    return None


def _encounter(ctx: FactContext) -> Resource | None:
    wanted = str(ctx.context.get("encounterId", ""))
    for encounter in ctx.resources("Encounter"):
        if str(encounter.get("id")) == wanted:
            return encounter
    return None


_VISIT_KINDS = (
    ("dosing", "VS-KAP-DOSING"),
    ("integration", "VS-KAP-INTEGRATION"),
    ("preparation", "VS-KAP-PREPARATION"),
)


def _visit_kinds(encounter: Resource, ctx: FactContext) -> set[str]:
    """The KAP visit kinds (dosing / integration / preparation) the encounter is typed as,
    itself or through its linked Appointment (value sets a site can extend)."""
    linked_ids = {reference_id(r) for r in encounter.get("appointment") or ()}
    kinds = _kinds_of(list(encounter.get("type") or ()), ctx)
    for appointment in ctx.resources("Appointment"):
        if str(appointment.get("id")) in linked_ids:
            kinds |= _appointment_kinds(appointment, ctx)
    return kinds


def _appointment_kinds(appointment: Resource, ctx: FactContext) -> set[str]:
    concepts = [*(appointment.get("serviceType") or ()), appointment.get("appointmentType")]
    return _kinds_of(concepts, ctx)


def _kinds_of(concepts: list[Any], ctx: FactContext) -> set[str]:
    return {
        kind
        for kind, vs_id in _VISIT_KINDS
        if vs_id in ctx.valuesets and any(ctx.in_valueset(c, vs_id) for c in concepts)
    }


def _encounter_doses(
    encounter: Resource, ctx: FactContext, drugs: KapDrugs, start: datetime | None, until: datetime
) -> list[KapDose]:
    """KAP doses given in this encounter: charted on it, or (not charted on any encounter)
    given between its start and ``until``. A dose from the morning is not the afternoon
    therapy visit's."""
    wanted = str(encounter.get("id"))
    return [
        d
        for d in kap_doses(ctx, drugs, until=until)
        if d.encounter_id == wanted
        or (d.encounter_id is None and start is not None and start <= d.start)
    ]


def _encounter_plan(ctx: FactContext, drugs: KapDrugs, now: datetime) -> Plan | None:
    """A dosing encounter (docs/contracts.md "Local codes"): typed kap-dosing (itself or its
    Appointment), or one in which a KAP dose is given, or one on the day an active KAP order
    is planned for when that day's dose has not been given yet. An encounter typed as an
    integration or preparation visit is not a dosing one unless a dose is charted on it."""
    encounter = _encounter(ctx)
    if encounter is None:
        return None
    period = encounter.get("period") or {}
    start = parse_time(period.get("start"), ctx.tz)
    end = parse_time(period.get("end"), ctx.tz)
    t0 = (end or now) if ctx.hook == "encounter-discharge" else (start or now)
    doses = _encounter_doses(encounter, ctx, drugs, start, max(t0, now))
    kinds = _visit_kinds(encounter, ctx)
    active = active_kap_order(ctx, drugs)
    if not (doses or "dosing" in kinds or (not kinds and _order_due(active, ctx, t0, drugs))):
        return None
    drug = doses[0].drug if doses else (active[1] if active else None)
    route = (
        doses[0].route if doses else (route_of(_first_dosage(active[0])) if active else "unknown")
    )
    return Plan(
        drug=drug,
        route=route,
        t0=t0,
        order=active[0] if active else None,
        encounter=encounter,
        pre_dose_until=_pre_dose_until(doses, t0, now) if ctx.hook == "encounter-start" else None,
    )


def _pre_dose_until(doses: list[KapDose], t0: datetime, now: datetime) -> datetime:
    """Vitals are taken after rooming, minutes after the encounter opens: a reading counts as
    pre-dose until the encounter's first dose, or, with none charted yet, until now."""
    return max(t0, min(d.start for d in doses) if doses else now)


def _order_due(
    active: tuple[Resource, str] | None, ctx: FactContext, t0: datetime, drugs: KapDrugs
) -> bool:
    """The active KAP order is planned for T0's day and no session was given earlier that day
    (then this visit is the dose; after it, a later visit that day is something else)."""
    planned = planned_time(active[0], ctx) if active else None
    if planned is None or not same_day(planned, t0, ctx.tz):
        return False
    return not any(same_day(d.start, t0, ctx.tz) for d in kap_doses(ctx, drugs, until=t0))


def _chart_plan(ctx: FactContext, drugs: KapDrugs, now: datetime) -> Plan | None:
    active = active_kap_order(ctx, drugs)
    if active:
        order, drug = active
        return Plan(
            drug=drug,
            route=route_of(_first_dosage(order)),
            t0=now,
            order=order,
            at_home=home_evidence(order) is not None,
            home_evidence=home_evidence(order),
        )
    window = ctx.policy.number("session_window_minutes")
    sessions = aggregate(kap_doses(ctx, drugs, until=now), window)
    if sessions:
        return Plan(drug=sessions[-1].drug, route=sessions[-1].route, t0=now)
    return None
