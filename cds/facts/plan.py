"""Find what a request is about (the plan) and its evaluation time T0.

T0 (DESIGN.md) is the planned dose time when the request carries one — the order's
``dosageInstruction[0].timing.event[0]``, the appointment's ``start``, the encounter's
``period.start`` — otherwise the time the request arrived. At encounter-discharge T0 is the
discharge time (``period.end``, else arrival): the driving and observation rules measure from it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cds.facts.context import FactContext, Plan
from cds.facts.drugs import KapDrugs, medications_by_id, route_of
from cds.facts.fhir import Resource, codings, parse_time, reference_id
from cds.facts.sessions import aggregate, kap_doses
from cds.facts.triage import bundle_resources, is_kap_appointment, kap_orders

_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
_AT_HOME_FLAG = ("urn:kap-cds:flag", "at-home")


def _first_dosage(order: Resource) -> dict[str, Any]:
    dosages = order.get("dosageInstruction") or [{}]
    return dosages[0] if isinstance(dosages[0], dict) else {}


def planned_time(order: Resource, ctx: FactContext) -> datetime | None:
    timing = _first_dosage(order).get("timing") or {}
    events = timing.get("event") or []
    return parse_time(events[0], ctx.tz) if events else None


def _dispensed_to_patient(order: Resource) -> bool:
    dispense = order.get("dispenseRequest")
    return isinstance(dispense, dict) and any(
        dispense.get(k) for k in ("quantity", "numberOfRepeatsAllowed", "expectedSupplyDuration")
    )


def _at_home(order: Resource) -> bool:
    categories = [c for concept in order.get("category") or () for c in codings(concept)]
    community = any(s == _CATEGORY_SYSTEM and c == "community" for s, c, _d in categories)
    flagged = any((s, c) == _AT_HOME_FLAG for s, c, _d in categories)
    return community or flagged or _dispensed_to_patient(order)


def plan_from_order(order: Resource, drug: str, ctx: FactContext, now: datetime) -> Plan:
    planned = planned_time(order, ctx)
    return Plan(
        drug=drug,
        route=route_of(_first_dosage(order)),
        t0=planned or now,
        order=order,
        at_home=_at_home(order),
        home_dispense=_dispensed_to_patient(order),
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
                at_home=bool(order and _at_home(order)),
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


def _is_dosing_encounter(
    encounter: Resource, ctx: FactContext, day_doses: bool, order_today: bool
) -> bool:
    typed = any(
        system == "urn:kap-cds:appointment-type" and code == "kap-dosing"
        for concept in encounter.get("type") or ()
        for system, code, _d in codings(concept)
    )
    linked_ids = {reference_id(r) for r in encounter.get("appointment") or ()}
    linked = any(
        is_kap_appointment(a)
        for a in ctx.resources("Appointment")
        if str(a.get("id")) in linked_ids
    )
    return typed or linked or day_doses or order_today


def _encounter_plan(ctx: FactContext, drugs: KapDrugs, now: datetime) -> Plan | None:
    encounter = _encounter(ctx)
    if encounter is None:
        return None
    period = encounter.get("period") or {}
    start = parse_time(period.get("start"), ctx.tz)
    end = parse_time(period.get("end"), ctx.tz)
    t0 = (end or now) if ctx.hook == "encounter-discharge" else (start or now)
    doses = [d for d in kap_doses(ctx, drugs, until=t0) if _same_day(d.start, t0, ctx)]
    active = active_kap_order(ctx, drugs)
    planned = planned_time(active[0], ctx) if active else None
    order_today = bool(planned and _same_day(planned, t0, ctx))
    if not _is_dosing_encounter(encounter, ctx, bool(doses), order_today):
        return None
    drug = doses[0].drug if doses else (active[1] if active else None)
    route = (
        doses[0].route if doses else (route_of(_first_dosage(active[0])) if active else "unknown")
    )
    return Plan(
        drug=drug, route=route, t0=t0, order=active[0] if active else None, encounter=encounter
    )


def _chart_plan(ctx: FactContext, drugs: KapDrugs, now: datetime) -> Plan | None:
    active = active_kap_order(ctx, drugs)
    if active:
        order, drug = active
        return Plan(
            drug=drug,
            route=route_of(_first_dosage(order)),
            t0=now,
            order=order,
            at_home=_at_home(order),
        )
    window = ctx.policy.number("session_window_minutes")
    sessions = aggregate(kap_doses(ctx, drugs, until=now), window)
    if sessions:
        return Plan(drug=sessions[-1].drug, route=sessions[-1].route, t0=now)
    return None


def _same_day(a: datetime, b: datetime, ctx: FactContext) -> bool:
    return a.astimezone(ctx.tz).date() == b.astimezone(ctx.tz).date()
