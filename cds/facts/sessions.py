"""KAP dosing history: administrations aggregated into sessions, sessions into courses.

Catalog 3.4: every KAP MedicationAdministration (completed / in-progress), at-home
MedicationStatement and KAP Procedure whose start falls within the policy aggregation window
(180 min) of the first dose of the day is one session — a SPRAVATO dose is two or three devices
five minutes apart, and IM protocols give a supplemental dose ~12 min later. A course starts at
the first session, or after a gap longer than the policy course-reset days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cds.facts.context import FactContext
from cds.facts.drugs import KapDrugs, medications_by_id, route_of
from cds.facts.fhir import Resource, parse_time, ref

ADMIN_STATUSES = {"completed", "in-progress"}
STATEMENT_STATUSES = {"active", "completed", "intended"}
PROCEDURE_STATUSES = {"completed", "in-progress"}


@dataclass(frozen=True)
class KapDose:
    start: datetime
    end: datetime
    drug: str
    route: str
    mg: float | None
    ref: str
    at_home: bool
    encounter_id: str | None


@dataclass
class Session:
    doses: list[KapDose] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return self.doses[0].start

    @property
    def end(self) -> datetime:
        return max(d.end for d in self.doses)

    @property
    def drug(self) -> str:
        return self.doses[0].drug

    @property
    def route(self) -> str:
        return self.doses[0].route

    @property
    def mg(self) -> float | None:
        amounts = [d.mg for d in self.doses]
        return None if any(a is None for a in amounts) else sum(a for a in amounts if a)

    @property
    def at_home(self) -> bool:
        return all(d.at_home for d in self.doses)


def _mg(quantity: object) -> float | None:
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float):
        unit = str(quantity.get("code") or quantity.get("unit") or "").lower()
        if unit == "mg":
            return float(quantity["value"])
        if unit == "g":
            return float(quantity["value"]) * 1000
    return None


def _period(resource: Resource, ctx: FactContext, prefix: str) -> tuple[datetime, datetime] | None:
    moment = parse_time(resource.get(f"{prefix}DateTime"), ctx.tz)
    if moment:
        return moment, moment
    period = resource.get(f"{prefix}Period")
    if isinstance(period, dict):
        start = parse_time(period.get("start"), ctx.tz)
        end = parse_time(period.get("end"), ctx.tz) or start
        if start and end:
            return start, end
    return None


def kap_doses(ctx: FactContext, drugs: KapDrugs, until: datetime | None = None) -> list[KapDose]:
    """All KAP doses up to ``until`` (default T0): planned/future doses are not history."""
    limit = until or ctx.t0
    every = ctx.cached("kap_doses", lambda: _all_kap_doses(ctx, drugs))
    return [d for d in every if d.start <= limit]


def _all_kap_doses(ctx: FactContext, drugs: KapDrugs) -> list[KapDose]:
    meds = medications_by_id(ctx.resources("Medication"))
    doses: list[KapDose] = []
    for record in ctx.resources("MedicationAdministration"):
        if record.get("status") in ADMIN_STATUSES:
            doses += _dose(record, ctx, drugs, meds, "effective", record.get("dosage"), False)
    for record in ctx.resources("MedicationStatement"):
        if record.get("status") in STATEMENT_STATUSES:
            dosage = (record.get("dosage") or [None])[0]
            doses += _dose(record, ctx, drugs, meds, "effective", dosage, True)
    for record in ctx.resources("Procedure"):
        if record.get("status") in PROCEDURE_STATUSES:
            doses += _procedure_dose(record, ctx, drugs)
    return sorted(doses, key=lambda d: (d.start, d.ref))


def _dose(
    record: Resource,
    ctx: FactContext,
    drugs: KapDrugs,
    meds: dict[str, Resource],
    prefix: str,
    dosage: object,
    at_home: bool,
) -> list[KapDose]:
    drug = drugs.classify(record, meds)
    when = _period(record, ctx, prefix)
    if drug is None or when is None or not ctx.valid(record):
        return []
    dose = dosage.get("dose") if isinstance(dosage, dict) else None
    context = record.get("context") or {}
    encounter = context.get("reference") if isinstance(context, dict) else None
    return [
        KapDose(
            when[0],
            when[1],
            drug,
            route_of(dosage),
            _mg(dose),
            ref(record),
            at_home,
            str(encounter).rsplit("/", 1)[-1] if encounter else None,
        )
    ]


def _procedure_dose(record: Resource, ctx: FactContext, drugs: KapDrugs) -> list[KapDose]:
    drug = drugs.classify_concept(record.get("code"))
    when = _period(record, ctx, "performed")
    if drug is None or when is None or not ctx.valid(record):
        return []
    encounter = (record.get("encounter") or {}).get("reference")
    return [
        KapDose(
            when[0],
            when[1],
            drug,
            "unknown",
            None,
            ref(record),
            False,
            str(encounter).rsplit("/", 1)[-1] if encounter else None,
        )
    ]


def aggregate(doses: list[KapDose], window_minutes: float) -> list[Session]:
    sessions: list[Session] = []
    for dose in doses:
        if sessions and dose.start - sessions[-1].start <= timedelta(minutes=window_minutes):
            sessions[-1].doses.append(dose)
        else:
            sessions.append(Session([dose]))
    return sessions


def current_course(sessions: list[Session], reset_days: float) -> list[Session]:
    """The sessions of the course the newest session belongs to."""
    course: list[Session] = []
    for session in sessions:
        if course and session.start - course[-1].start > timedelta(days=reset_days):
            course = []
        course.append(session)
    return course
