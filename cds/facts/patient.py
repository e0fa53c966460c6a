"""The ``plan`` and ``patient`` facts."""

from __future__ import annotations

from datetime import date
from typing import Any

from cds.facts.context import FactContext
from cds.facts.fhir import codings, display_time, ref

Fact = dict[str, Any]

# Sex for clinical use (R5 backport / US Core birth sex) before administrative gender.
_BIRTH_SEX_URLS = (
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
    "http://hl7.org/fhir/StructureDefinition/patient-sexParameterForClinicalUse",
)
_BIRTH_SEX = {"F": "female", "M": "male", "female": "female", "male": "male"}


def patient_resource(ctx: FactContext) -> dict[str, Any] | None:
    patients = ctx.resources("Patient")
    wanted = ctx.patient_id
    for patient in patients:
        if str(patient.get("id")) == wanted:
            return patient
    return patients[0] if len(patients) == 1 else None


def age_years(birth_date: str | None, on: date) -> int | None:
    try:
        born = date.fromisoformat(birth_date[:10]) if birth_date and len(birth_date) >= 10 else None
    except ValueError:
        return None
    if born is None:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def clinical_sex(patient: dict[str, Any]) -> str:
    for extension in patient.get("extension") or ():
        if isinstance(extension, dict) and extension.get("url") in _BIRTH_SEX_URLS:
            code = extension.get("valueCode") or next(
                (c for _s, c, _d in codings(extension.get("valueCodeableConcept")) if c), None
            )
            if code in _BIRTH_SEX:
                return _BIRTH_SEX[code]
    gender = patient.get("gender")
    return gender if gender in ("female", "male", "other") else "unknown"


def _infertile(ctx: FactContext) -> bool:
    """Documented permanent infertility: hysterectomy, menopause (VS-INFERTILITY,
    VS-HYSTERECTOMY)."""
    for condition in ctx.resources("Condition"):
        if ctx.in_valueset(condition.get("code"), "VS-INFERTILITY"):
            verification = condition.get("verificationStatus") or {}
            if not any(c in ("refuted", "entered-in-error") for _s, c, _d in codings(verification)):
                return True
    return any(
        p.get("status") == "completed" and ctx.in_valueset(p.get("code"), "VS-HYSTERECTOMY")
        for p in ctx.resources("Procedure")
    )


def build_patient(ctx: FactContext) -> list[Fact]:
    patient = patient_resource(ctx)
    if patient is None or not ctx.valid(patient):
        return []
    age = age_years(patient.get("birthDate"), ctx.t0.astimezone(ctx.tz).date())
    sex = clinical_sex(patient)
    low = ctx.policy.number("reproductive_age_min")
    high = ctx.policy.number("reproductive_age_max")
    potential = sex == "female" and age is not None and low <= age <= high and not _infertile(ctx)
    fact = {
        "t": "patient",
        "age_years": age,
        "sex": sex,
        "reproductive_potential": potential,
        "ref": ref(patient),
    }
    return [fact, *_demographic_gaps(age, sex, ref(patient))]


def _demographic_gaps(age: int | None, sex: str, patient_ref: str) -> list[Fact]:
    """Checks that silently could not run without a birth date or a sex are named instead."""
    gaps = []
    if age is None:
        gaps.append(
            {
                "t": "data_gap",
                "key": f"{patient_ref} birthDate",
                "reason": "missing",
                "checks": "age checks (under 18, young adults) and pregnancy status",
                "what": "The patient's birth date is not recorded",
            }
        )
    if sex in ("unknown", "other"):
        gaps.append(
            {
                "t": "data_gap",
                "key": f"{patient_ref} sex",
                "reason": "not recorded",
                "checks": "pregnancy status for a patient who may be able to become pregnant",
                "what": "The patient's sex is not recorded",
            }
        )
    return gaps


def build_plan(ctx: FactContext) -> list[Fact]:
    plan = ctx.plan
    if plan is None:
        return []
    patient = patient_resource(ctx)
    age = (
        age_years(patient.get("birthDate"), plan.t0.astimezone(ctx.tz).date()) if patient else None
    )
    order = plan.order or {}
    reasons = [*(order.get("reasonCode") or ())]
    return [
        {
            "t": "plan",
            "phase": ctx.phase,
            "drug": plan.drug,
            "route": plan.route,
            "at_display": display_time(plan.t0, ctx.tz),
            "order_ref": ref(order) if order else None,
            "at_home": plan.at_home,
            "home_evidence": plan.home_evidence,
            "indication_mdsi": any(ctx.in_valueset(r, "VS-MDD-SI") for r in reasons),
            "age_years": age,
        }
    ]
