"""``condition``, ``medication`` and ``allergy`` facts (catalog 3.2 validity filters)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from cds.facts import vitals
from cds.facts.calendar import calendar_days, local_day
from cds.facts.context import FactContext
from cds.facts.drugs import KapDrugs, route_of
from cds.facts.fhir import (
    Resource,
    codings,
    concept_text,
    condition_abatement,
    condition_onset,
    days_between,
    display_date,
    minutes_between,
    parse_time,
    ref,
    status_code,
)
from cds.facts.sessions import kap_doses
from cds.ruleset.valuesets import ValueSet

Fact = dict[str, Any]

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

_UNUSABLE_VERIFICATION = {"refuted", "entered-in-error"}
_POSSIBLE = {"unconfirmed", "provisional", "differential"}
_ACTIVE_CLINICAL = {"active", "recurrence", "relapse"}
QUALIFIER_SYSTEM = "urn:kap-cds:condition-qualifier"  # local: code "uncontrolled"
_HYPERTENSION = ("VS-HTN", "VS-HTN-CRISIS")
_UNCONTROLLED_WORD = re.compile(r"\buncontrolled\b", re.IGNORECASE)


def _valuesets_for(ctx: FactContext, systems: set[str], with_names: bool) -> tuple[str, ...]:
    """Value sets with codes in these systems (and, for medications, the named ones)."""
    return _valuesets_with(tuple(sorted(systems)), with_names, ctx.valuesets)


_CANDIDATES: dict[tuple[int, tuple[str, ...], bool], tuple[str, ...]] = {}


def _valuesets_with(
    systems: tuple[str, ...], with_names: bool, valuesets: dict[str, ValueSet]
) -> tuple[str, ...]:
    # Depends on the loaded value sets only: computed once per rule set, not per request.
    key = (id(valuesets), systems, with_names)
    if key not in _CANDIDATES:
        _CANDIDATES[key] = tuple(
            vs_id
            for vs_id, vs in valuesets.items()
            if ({s for s, _c in vs.exact} | {s for s, _p in vs.prefixes}) & set(systems)
            or (with_names and vs.name_pattern is not None)
        )
    return _CANDIDATES[key]


# ---- conditions -------------------------------------------------------------------------


def build_conditions(ctx: FactContext) -> list[Fact]:
    return ctx.cached("conditions", lambda: _build_conditions(ctx))


def _build_conditions(ctx: FactContext) -> list[Fact]:
    candidates = _valuesets_for(ctx, {SNOMED, ICD10CM}, with_names=False)
    facts: list[Fact] = []
    first_kap = _first_kap_dose(ctx) if ctx.resources("Condition") else None
    for condition in ctx.resources("Condition"):
        verification = status_code(condition.get("verificationStatus"))
        if verification in _UNUSABLE_VERIFICATION:
            continue
        matched = list(ctx.matching_valuesets(condition.get("code"), candidates=candidates))
        if matched and ctx.valid_once_matched(condition, "condition"):
            facts += [
                _condition_fact(condition, vs_id, verification, ctx, first_kap) for vs_id in matched
            ]
    return facts


def _first_kap_dose(ctx: FactContext) -> datetime | None:
    """Start of the patient's first recorded KAP dose before T0 (catalog 3.4 records)."""
    if "VS-KETAMINE" not in ctx.valuesets or "VS-ESKETAMINE" not in ctx.valuesets:
        return None
    drugs = KapDrugs(ctx.valuesets["VS-KETAMINE"], ctx.valuesets["VS-ESKETAMINE"])
    doses = kap_doses(ctx, drugs)
    return doses[0].start if doses else None


def _qualified_uncontrolled(condition: Resource) -> bool:
    """The local "uncontrolled" qualifier coded in code or severity (not just the word)."""
    return any(
        system == QUALIFIER_SYSTEM and code == "uncontrolled"
        for concept in (condition.get("code"), condition.get("severity"))
        for system, code, _display in codings(concept)
    )


def _normal_bp_since(condition: Resource, ctx: FactContext) -> bool:
    """Blood pressure readings since the diagnosis was recorded show control: at least two, on
    different days, none above the warning limits, the newest within the BP look-back. A
    problem-list title that still says "uncontrolled" then describes the past."""
    recorded = condition_onset(condition, ctx.tz)
    lookback = ctx.policy.number("bp_lookback_days")
    span = days_between(recorded, ctx.t0) if recorded else lookback
    found = [r for r in vitals.readings(ctx, max(span, 0)) if not recorded or r.at >= recorded]
    if len({local_day(r.at, ctx.tz) for r in found}) < 2:
        return False
    newest_ok = days_between(found[0].at, ctx.t0) <= lookback
    sbp, dbp = ctx.policy.number("bp_warning_systolic"), ctx.policy.number("bp_warning_diastolic")
    return newest_ok and all(r.sbp <= sbp and r.dbp <= dbp for r in found)


def _uncontrolled(condition: Resource) -> bool:
    """The local "uncontrolled" qualifier (catalog KAP-CI-009/013): a coding
    urn:kap-cds:condition-qualifier#uncontrolled in code or severity, or the word in the text."""
    for concept in (condition.get("code"), condition.get("severity")):
        for system, code, display in codings(concept):
            if system == QUALIFIER_SYSTEM and code == "uncontrolled":
                return True
            if isinstance(display, str) and _UNCONTROLLED_WORD.search(display):
                return True
    return bool(_UNCONTROLLED_WORD.search(concept_text(condition.get("code"))))


_ICD10CM_SYSTEMS = (ICD10CM, "urn:oid:2.16.840.1.113883.6.90")


def _icd_acute_mi(condition: Resource) -> bool:
    """Coded I21/I22 in ICD-10-CM, which by convention means within 4 weeks of onset: the
    only sign of recency an undated problem-list MI carries."""
    return any(
        system in _ICD10CM_SYSTEMS
        and isinstance(code, str)
        and code.upper().replace(".", "").startswith(("I21", "I22"))
        for system, code, _d in codings(condition.get("code"))
    )


def _abated_by(condition: Resource, ctx: FactContext) -> bool:
    if condition.get("abatementBoolean") is True or condition.get("abatementString"):
        return True
    moment = condition_abatement(condition, ctx.tz)
    return bool(moment and moment <= ctx.t0)


def _condition_fact(
    condition: Resource,
    vs_id: str,
    verification: str | None,
    ctx: FactContext,
    first_kap: datetime | None = None,
) -> Fact:
    clinical = status_code(condition.get("clinicalStatus")) or "active"
    abated = _abated_by(condition, ctx)
    onset = condition_onset(condition, ctx.tz)
    vs = ctx.valuesets[vs_id]
    code = next((c for s, c, _d in codings(condition.get("code")) if vs.matches_coding(s, c)), None)
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
        "uncontrolled": _uncontrolled(condition),
        "uncontrolled_coded": _qualified_uncontrolled(condition),
        "normal_bp_since": (
            _normal_bp_since(condition, ctx)
            if vs_id in _HYPERTENSION and _uncontrolled(condition)
            else None
        ),
        "mi": "VS-MI" in ctx.valuesets and ctx.in_valueset(condition.get("code"), "VS-MI"),
        "mi_acute_by_code": _icd_acute_mi(condition),
        "after_kap_start": bool(onset and first_kap and onset > first_kap),
    }


# ---- medications ------------------------------------------------------------------------


def build_medications(ctx: FactContext) -> list[Fact]:
    candidates = _valuesets_for(ctx, {RXNORM}, with_names=True)
    facts: list[Fact] = []
    washout = _washout_candidates(ctx)
    for resource_type in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
        for record in ctx.resources(resource_type):
            state = _medication_state(record, ctx)
            if state is None:
                if washout and record.get("status") in TAKEN_STATUSES[resource_type]:
                    facts += _washout_facts(record, washout, ctx)
                continue
            concept = _medication_concept(record, ctx)
            matched = list(ctx.matching_valuesets(concept, candidates=candidates))
            if matched and ctx.valid(record):
                facts += [_medication_fact(record, concept, vs, state, ctx) for vs in matched]
    return facts


# An MAOI still acts after its last dose: irreversible ones until new enzyme is made (~2 weeks),
# methylene blue for the catalog's 7 days. (value set, policy key for the window in days)
_MAOI_WINDOWS = (
    ("VS-MAOI-IRREVERSIBLE", "maoi_washout_days"),
    ("VS-METHYLENE-BLUE", "methylene_blue_days"),
)
TAKEN_STATUSES = {
    "MedicationStatement": {"active", "completed", "stopped", "intended"},
    "MedicationRequest": {"active", "completed", "stopped", "on-hold"},
    "MedicationAdministration": {"completed", "in-progress"},
}


def _washout_candidates(ctx: FactContext) -> tuple[str, ...]:
    return tuple(vs for vs, _key in _MAOI_WINDOWS if vs in ctx.valuesets)


def _washout_facts(record: Resource, washout: tuple[str, ...], ctx: FactContext) -> list[Fact]:
    """An MAOI no longer taken whose effect has not worn off: last taken within its window.

    A ``medication`` fact (vs VS-MAOI, ``washout``), so KAP-CI-032 can warn that phenelzine
    stopped 5 days ago or methylene blue given 3 days ago still interacts."""
    concept = _medication_concept(record, ctx)
    windows = dict(_MAOI_WINDOWS)
    found = next(iter(ctx.matching_valuesets(concept, candidates=washout)), None)
    # Validate before reading nested fields: valid R4 guarantees their types.
    if found is None or not ctx.valid(record):
        return []
    last = _last_taken(record, ctx)
    if last is None or last > ctx.t0:
        return []
    days = calendar_days(last, ctx.t0, ctx.tz)
    if days > ctx.policy.number(windows[found]):
        return []
    return [_washout_fact(record, concept, last, days, ctx)]


def _last_taken(record: Resource, ctx: FactContext) -> datetime | None:
    """When the drug was last taken: an administration's time, a statement's end (else its
    date), an order's end of dosing (boundsPeriod or validity end)."""
    if record.get("resourceType") == "MedicationRequest":
        dosages = record.get("dosageInstruction") or [{}]
        timing = (dosages[0] if isinstance(dosages[0], dict) else {}).get("timing") or {}
        bounds = (timing.get("repeat") or {}).get("boundsPeriod") or {}
        validity = (record.get("dispenseRequest") or {}).get("validityPeriod") or {}
        return parse_time(bounds.get("end") or validity.get("end"), ctx.tz)
    period = record.get("effectivePeriod") or {}
    return parse_time(
        period.get("end") or record.get("effectiveDateTime") or period.get("start"), ctx.tz
    )


def _washout_fact(
    record: Resource, concept: Any, last: datetime, days: int, ctx: FactContext
) -> Fact:
    return {
        "t": "medication",
        "vs": "VS-MAOI",
        "active": False,
        "on_hold": False,
        "washout": True,
        "source": record.get("resourceType"),
        "name": concept_text(concept) or "unnamed medication",
        "last_taken_display": display_date(last, ctx.tz),
        "days_since_last_taken": days,
        "ref": ref(record),
    }


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


def _medication_fact(
    record: Resource, concept: Any, vs_id: str, state: dict[str, Any], ctx: FactContext
) -> Fact:
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
        **_daily_dose(concept, dosage, vs_id),
    }


# Oral dose equivalent to 10 mg diazepam (Ashton, "Benzodiazepines: how they work and how to
# withdraw", 2002, table 1; single-value rows only). Used for KAP-CI-030's REF-10 threshold
# (policy benzodiazepine_diazepam_eq_mg); the table is for the medical director to confirm.
DIAZEPAM_10MG_EQUIVALENT = {
    "alprazolam": 0.5,
    "chlordiazepoxide": 25.0,
    "clobazam": 20.0,
    "clonazepam": 0.5,
    "clorazepate": 15.0,
    "diazepam": 10.0,
    "lorazepam": 1.0,
    "oxazepam": 20.0,
    "temazepam": 20.0,
    "triazolam": 0.5,
}
_BENZO_RXCUI = {
    "596": "alprazolam",
    "2356": "chlordiazepoxide",
    "21241": "clobazam",
    "2598": "clonazepam",
    "3322": "diazepam",
    "6470": "lorazepam",
    "7781": "oxazepam",
    "10355": "temazepam",
    "10767": "triazolam",
}
_PER_DAY_BY_CODE = {
    "QD": 1.0,
    "AM": 1.0,
    "PM": 1.0,
    "QHS": 1.0,
    "HS": 1.0,
    "BID": 2.0,
    "TID": 3.0,
    "QID": 4.0,
    "QOD": 0.5,
}
_PERIOD_PER_DAY = {"min": 1440.0, "h": 24.0, "d": 1.0, "wk": 1 / 7, "mo": 1 / 30}


def _daily_dose(concept: Any, dosage: Any, vs_id: str) -> Fact:
    """daily_mg (prescribed maximum per day) and, for benzodiazepines, its diazepam equivalent."""
    daily = _daily_mg(dosage)
    if daily is None:
        return {}
    result: Fact = {"daily_mg": round(daily, 1)}
    if vs_id == "VS-BENZODIAZEPINE":
        ingredient = _benzodiazepine(concept)
        if ingredient:
            eq = daily * 10.0 / DIAZEPAM_10MG_EQUIVALENT[ingredient]
            result["diazepam_eq_mg_day"] = round(eq, 1)
    return result


def _benzodiazepine(concept: Any) -> str | None:
    """The single benzodiazepine ingredient of a concept (None for combinations/unknown)."""
    found = {
        _BENZO_RXCUI[c]
        for s, c, _d in codings(concept)
        if s == RXNORM and isinstance(c, str) and c in _BENZO_RXCUI
    }
    displays = [d for _s, _c, d in codings(concept) if isinstance(d, str)]
    text = " ".join(filter(None, [concept_text(concept), *displays]))
    found |= {n for n in DIAZEPAM_10MG_EQUIVALENT if re.search(rf"\b{n}\b", text, re.IGNORECASE)}
    return found.pop() if len(found) == 1 else None


def _daily_mg(dosage: Any) -> float | None:
    if not isinstance(dosage, dict):
        return None
    mg = _dose_mg(dosage)
    per_day = _doses_per_day(dosage.get("timing"))
    return mg * per_day if mg is not None and per_day is not None else None


def _dose_mg(dosage: dict[str, Any]) -> float | None:
    quantity = dosage.get("dose")  # MedicationAdministration.dosage
    entries = dosage.get("doseAndRate")
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict):
            dose_range = entry.get("doseRange")
            quantity = entry.get("doseQuantity") or (
                dose_range.get("high") if isinstance(dose_range, dict) else None
            )
            break
    if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), int | float):
        return None
    unit = str(quantity.get("code") or quantity.get("unit") or "").lower()
    factor = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001}.get(unit)
    return float(quantity["value"]) * factor if factor else None


def _doses_per_day(timing: Any) -> float | None:
    if not isinstance(timing, dict):
        return None
    repeat = timing.get("repeat")
    repeat = repeat if isinstance(repeat, dict) else {}
    period, unit = repeat.get("period"), repeat.get("periodUnit")
    if (
        isinstance(period, int | float)
        and period > 0
        and isinstance(unit, str)
        and unit in _PERIOD_PER_DAY
    ):
        counts = [
            c
            for c in (repeat.get("frequency"), repeat.get("frequencyMax"))
            if isinstance(c, int | float)
        ]
        return max(counts or [1]) * _PERIOD_PER_DAY[unit] / period
    for _system, code, _display in codings(timing.get("code")):
        if isinstance(code, str) and code.upper() in _PER_DAY_BY_CODE:
            return _PER_DAY_BY_CODE[code.upper()]
    return None


# ---- allergies --------------------------------------------------------------------------


def build_allergies(ctx: FactContext) -> list[Fact]:
    facts: list[Fact] = []
    for allergy in ctx.resources("AllergyIntolerance"):
        if status_code(allergy.get("verificationStatus")) in _UNUSABLE_VERIFICATION:
            continue
        if status_code(allergy.get("clinicalStatus")) not in (None, "active"):
            continue
        for vs_id in ctx.matching_valuesets(
            allergy.get("code"), candidates=("VS-KETAMINE", "VS-ESKETAMINE")
        ):
            if ctx.valid(allergy):
                facts.append(
                    {
                        "t": "allergy",
                        "vs": vs_id,
                        "display": concept_text(allergy.get("code")) or "ketamine",
                        "criticality": allergy.get("criticality"),
                        "ref": ref(allergy),
                    }
                )
    return facts
