"""``condition``, ``medication`` and ``allergy`` facts (catalog 3.2 validity filters)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cds.facts.context import FactContext
from cds.facts.drugs import route_of
from cds.facts.fhir import (
    Resource,
    concept_text,
    days_between,
    display_date,
    minutes_between,
    parse_time,
    ref,
    status_code,
)

Fact = dict[str, Any]

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

_UNUSABLE_VERIFICATION = {"refuted", "entered-in-error"}
_POSSIBLE = {"unconfirmed", "provisional", "differential"}
_ACTIVE_CLINICAL = {"active", "recurrence", "relapse"}


def _valuesets_for(ctx: FactContext, systems: set[str], with_names: bool) -> tuple[str, ...]:
    chosen = []
    for vs_id, vs in ctx.valuesets.items():
        vs_systems = {s for s, _c in vs.exact} | {s for s, _p in vs.prefixes}
        if (vs_systems & systems) or (with_names and vs.name_pattern is not None):
            chosen.append(vs_id)
    return tuple(chosen)


# ---- conditions -------------------------------------------------------------------------


def build_conditions(ctx: FactContext) -> list[Fact]:
    candidates = _valuesets_for(ctx, {SNOMED, ICD10CM}, with_names=False)
    facts: list[Fact] = []
    for condition in ctx.resources("Condition"):
        verification = status_code(condition.get("verificationStatus"))
        if verification in _UNUSABLE_VERIFICATION:
            continue
        matched = list(ctx.matching_valuesets(condition.get("code"), candidates=candidates))
        if matched and ctx.valid(condition):
            facts += [_condition_fact(condition, vs_id, verification, ctx) for vs_id in matched]
    return facts


def _abated_by(condition: Resource, ctx: FactContext) -> bool:
    if condition.get("abatementBoolean") is True or condition.get("abatementString"):
        return True
    moment = parse_time(condition.get("abatementDateTime"), ctx.tz)
    period = condition.get("abatementPeriod") or {}
    moment = moment or parse_time(period.get("end") or period.get("start"), ctx.tz)
    return bool(moment and moment <= ctx.t0)


def _condition_fact(condition: Resource, vs_id: str, verification: str | None,
                    ctx: FactContext) -> Fact:
    clinical = status_code(condition.get("clinicalStatus")) or "active"
    abated = _abated_by(condition, ctx)
    onset = _onset(condition, ctx)
    vs = ctx.valuesets[vs_id]
    code = next((c for s, c, _d in _codings(condition) if vs.matches_coding(s, c)), None)
    return {
        "t": "condition",
        "vs": vs_id,
        "active": clinical in _ACTIVE_CLINICAL and not abated,
        "clinical_status": clinical,
        "possible": verification in _POSSIBLE,
        "onset_days_ago": days_between(onset, ctx.t0) if onset else None,
        "abated": abated,
        "code": code,
        "display": concept_text(condition.get("code")) or code,
        "date_display": display_date(onset, ctx.tz) if onset else None,
        "ref": ref(condition),
    }


def _codings(resource: Resource) -> list[tuple[Any, Any, Any]]:
    concept = resource.get("code") or {}
    return [(c.get("system"), c.get("code"), c.get("display"))
            for c in concept.get("coding") or () if isinstance(c, dict)]


def _onset(condition: Resource, ctx: FactContext) -> datetime | None:
    period = condition.get("onsetPeriod") or {}
    for value in (condition.get("onsetDateTime"), period.get("start"), condition.get("recordedDate")):
        moment = parse_time(value, ctx.tz)
        if moment:
            return moment
    return None


# ---- medications ------------------------------------------------------------------------


def build_medications(ctx: FactContext) -> list[Fact]:
    candidates = _valuesets_for(ctx, {RXNORM}, with_names=True)
    facts: list[Fact] = []
    for resource_type in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
        for record in ctx.resources(resource_type):
            state = _medication_state(record, ctx)
            if state is None:
                continue
            concept = _medication_concept(record, ctx)
            matched = list(ctx.matching_valuesets(concept, candidates=candidates))
            if matched and ctx.valid(record):
                facts += [_medication_fact(record, concept, vs, state, ctx) for vs in matched]
    return facts


def _medication_concept(record: Resource, ctx: FactContext) -> Any:
    if record.get("medicationCodeableConcept") is not None:
        return record["medicationCodeableConcept"]
    reference = record.get("medicationReference") or {}
    target = str(reference.get("reference") or "")
    if target.startswith("#"):
        for contained in record.get("contained") or ():
            if isinstance(contained, dict) and contained.get("id") == target[1:]:
                return contained.get("code")
    for medication in ctx.resources("Medication"):
        if target and str(medication.get("id")) == target.rsplit("/", 1)[-1]:
            return medication.get("code")
    return {"text": reference.get("display") or ""}


def _medication_state(record: Resource, ctx: FactContext) -> dict[str, Any] | None:
    """Whether a record counts (catalog 3.2): None = ignore it."""
    kind, status = record.get("resourceType"), record.get("status")
    if kind == "MedicationRequest":
        if status in ("active", "draft"):  # draft: being ordered now, e.g. in draftOrders
            return {"active": True, "on_hold": False}
        return {"active": False, "on_hold": True} if status == "on-hold" else None
    if kind == "MedicationStatement":
        if status not in ("active", "intended"):
            return None
        period = record.get("effectivePeriod") or {}
        ended = parse_time(period.get("end"), ctx.tz)
        return None if ended and ended < ctx.t0 else {"active": True, "on_hold": False}
    return _administration_state(record, ctx)


def _administration_state(record: Resource, ctx: FactContext) -> dict[str, Any] | None:
    if record.get("status") not in ("completed", "in-progress"):
        return None
    period = record.get("effectivePeriod") or {}
    given = parse_time(record.get("effectiveDateTime") or period.get("start"), ctx.tz)
    window = timedelta(hours=ctx.policy.number("recent_administration_hours"))
    if given is None or given > ctx.t0 or ctx.t0 - given > window:
        return None
    return {"active": True, "on_hold": False, "minutes_before": minutes_between(given, ctx.t0)}


def _medication_fact(record: Resource, concept: Any, vs_id: str, state: dict[str, Any],
                     ctx: FactContext) -> Fact:
    dosage = record.get("dosage")
    if record.get("resourceType") != "MedicationAdministration":
        dosages = record.get("dosageInstruction") or record.get("dosage") or [None]
        dosage = dosages[0] if isinstance(dosages, list) else None
    return {
        "t": "medication",
        "vs": vs_id,
        "active": state["active"],
        "on_hold": state["on_hold"],
        "source": record.get("resourceType"),
        "route": route_of(dosage),
        "minutes_before": state.get("minutes_before"),
        "name": concept_text(concept) or "unnamed medication",
        "ref": ref(record),
    }


# ---- allergies --------------------------------------------------------------------------


def build_allergies(ctx: FactContext) -> list[Fact]:
    facts: list[Fact] = []
    for allergy in ctx.resources("AllergyIntolerance"):
        if status_code(allergy.get("verificationStatus")) in _UNUSABLE_VERIFICATION:
            continue
        if status_code(allergy.get("clinicalStatus")) not in (None, "active"):
            continue
        for vs_id in ctx.matching_valuesets(allergy.get("code"),
                                            candidates=("VS-KETAMINE", "VS-ESKETAMINE")):
            if ctx.valid(allergy):
                facts.append({
                    "t": "allergy", "vs": vs_id,
                    "display": concept_text(allergy.get("code")) or "ketamine",
                    "criticality": allergy.get("criticality"),
                    "ref": ref(allergy),
                })
    return facts
