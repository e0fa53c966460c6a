"""The ``dose`` fact: the dose of the KAP order, or of the session's administrations (catalog 4.5).

Order (order-select/sign, and any phase that has an order): ``dosageInstruction[0]``,
``doseAndRate[0].doseQuantity`` in mg, g, mg/kg (× weight) or mL (only with a known ketamine
injection concentration stated by the product or the text), ``rateQuantity``/``rateRatio`` and
``timing.repeat.duration`` for infusions. Session (encounter-start/discharge): the
MedicationAdministrations of this encounter or dosing day, aggregated with the policy session
window, so an IM supplemental dose or the second SPRAVATO device counts toward one session total.

mg/kg uses the newest usable weight only when it is no older than ``weight_critical_days``: a
stale or missing weight leaves ``mg_per_kg`` absent, so the dose-band rules stay silent and
KAP-DOSE-001 speaks instead (no false reassurance from an old weight). An order written in mg/kg
keeps its ordered mg/kg — that number does not depend on the weight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from cds.facts.context import FactContext, Plan
from cds.facts.drugs import KapDrugs, medications_by_id
from cds.facts.fhir import Resource, concept_text, minutes_between, reference_id
from cds.facts.sessions import Session, aggregate, kap_doses
from cds.facts.weight import days_ago, newest_weight

Fact = dict[str, Any]

ESKETAMINE_DEVICE_MG = 28.0
# Ketamine HCl injection strengths (catalog 3.5, REF-05): an mL dose is converted only with one.
KNOWN_CONCENTRATIONS = (10.0, 50.0, 100.0)
_MASS_TO_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001}
_TIME_TO_MIN = {
    **dict.fromkeys(("s", "sec", "second", "seconds"), 1 / 60),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), 1.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 60.0),
}
_CONCENTRATION = re.compile(r"(\d+(?:\.\d+)?)\s*mg\s*/\s*(\d+(?:\.\d+)?)?\s*ml\b", re.I)
_AS_DIRECTED = re.compile(r"\bas directed\b|\bprn\b|\bas needed\b", re.I)


@dataclass(frozen=True)
class Amount:
    """What a dose says once normalized (None = not known)."""

    mg: float | None = None
    mg_per_kg: float | None = None
    weight_based: bool = False
    problem: str | None = None
    rate_mg_per_kg_min: float | None = None
    duration_min: float | None = None
    timed: bool = False  # an infusion duration or rate was given (or the session has an end)


# ---- units -------------------------------------------------------------------------------


_UNIT_SPELLINGS = (("(kg.min)", "kg/min"), ("(kg.h)", "kg/h"), ("mg.kg-1", "mg/kg"))


def _unit(quantity: Any) -> str:
    """A Quantity's unit (UCUM code first), lower case, one spelling: mg/(kg.min) -> mg/kg/min."""
    if not isinstance(quantity, dict):
        return ""
    unit = str(quantity.get("code") or quantity.get("unit") or "").strip().lower().replace(" ", "")
    for spelling, canonical in _UNIT_SPELLINGS:
        unit = unit.replace(spelling, canonical)
    return unit


def _number(quantity: Any) -> float | None:
    value = quantity.get("value") if isinstance(quantity, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _minutes(unit: str) -> float | None:
    return _TIME_TO_MIN.get(unit)


def _rate_parts(unit: str) -> tuple[float, bool, float] | None:
    """A rate unit as (factor to mg, per kg, minutes per time unit): mg/kg/min -> (1, True, 1)."""
    parts = unit.split("/")
    if len(parts) == 3 and parts[1] == "kg":
        mass, per_kg, time = parts[0], True, parts[2]
    elif len(parts) == 2:
        mass, per_kg, time = parts[0], False, parts[1]
    else:
        return None
    minutes = _minutes(time)
    if mass not in _MASS_TO_MG or minutes is None:
        return None
    return _MASS_TO_MG[mass], per_kg, minutes


# ---- the order ---------------------------------------------------------------------------


def _first(items: Any) -> dict[str, Any]:
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return items[0]
    return {}


def _medication_texts(order: Resource, ctx: FactContext) -> list[str]:
    """Product names and ingredient strengths that may state an injection concentration."""
    texts = [concept_text(order.get("medicationCodeableConcept"))]
    texts += [
        str(c.get("display") or "")
        for c in (order.get("medicationCodeableConcept") or {}).get("coding") or ()
        if isinstance(c, dict)
    ]
    medication = _referenced_medication(order, ctx)
    if medication:
        texts.append(concept_text(medication.get("code")))
        texts += [
            _strength_text(i.get("strength"))
            for i in medication.get("ingredient") or ()
            if isinstance(i, dict)
        ]
    reference = order.get("medicationReference")
    if isinstance(reference, dict):
        texts.append(str(reference.get("display") or ""))
    texts.append(str(_first(order.get("dosageInstruction")).get("text") or ""))
    return [t for t in texts if t]


def _referenced_medication(order: Resource, ctx: FactContext) -> Resource | None:
    target = reference_id(order.get("medicationReference"))
    if target is None:
        return None
    if target.startswith("#"):
        return next(
            (
                c
                for c in order.get("contained") or ()
                if isinstance(c, dict) and c.get("id") == target[1:]
            ),
            None,
        )
    return medications_by_id(ctx.resources("Medication")).get(target)


def _strength_text(ratio: Any) -> str:
    if not isinstance(ratio, dict):
        return ""
    numerator, denominator = ratio.get("numerator"), ratio.get("denominator")
    if _unit(numerator) != "mg" or _unit(denominator) != "ml":
        return ""
    return f"{_number(numerator)} mg/{_number(denominator)} mL"


def concentration_mg_per_ml(texts: list[str]) -> float | str:
    """The single stated concentration in mg/mL, or the reason an mL dose cannot be converted."""
    found = set()
    for text in texts:
        for amount, volume in _CONCENTRATION.findall(text):
            found.add(round(float(amount) / float(volume or 1), 3))
    if not found:
        return "dose in mL but no concentration is stated"
    if len(found) > 1:
        return "dose in mL but the product states more than one concentration"
    value = found.pop()
    if value not in KNOWN_CONCENTRATIONS:
        return f"dose in mL at {value:g} mg/mL, not a known ketamine injection strength"
    return value


def _missing_dose_problem(dosage: dict[str, Any]) -> str:
    as_needed = dosage.get("asNeededBoolean") is True or bool(dosage.get("asNeededCodeableConcept"))
    if as_needed or _AS_DIRECTED.search(str(dosage.get("text") or "")):
        return "as needed / as directed without a dose quantity"
    return "no dose quantity"


def order_amount(order: Resource, drug: str | None, kg: float | None, ctx: FactContext) -> Amount:
    """mg and mg/kg of the order's first dose (no rate or duration yet)."""
    dosage = _first(order.get("dosageInstruction"))
    quantity = _first(dosage.get("doseAndRate")).get("doseQuantity")
    value, unit = _number(quantity), _unit(quantity)
    if value is None:
        return Amount(problem=_missing_dose_problem(dosage))
    if unit in _MASS_TO_MG:
        return _from_mg(value * _MASS_TO_MG[unit], kg)
    if unit == "mg/kg":
        mg = round(value * kg, 1) if kg else None
        return Amount(mg=mg, mg_per_kg=round(value, 3), weight_based=True)
    if unit == "ml":
        if drug != "ketamine":
            return Amount(problem="esketamine dose in mL")
        concentration = concentration_mg_per_ml(_medication_texts(order, ctx))
        if isinstance(concentration, str):
            return Amount(problem=concentration)
        return _from_mg(value * concentration, kg)
    return Amount(problem=f"unit '{unit or 'missing'}' is not convertible to mg")


def _from_mg(mg: float, kg: float | None) -> Amount:
    return Amount(mg=round(mg, 1), mg_per_kg=round(mg / kg, 3) if kg else None)


def with_rate(amount: Amount, dosage: dict[str, Any], kg: float | None) -> Amount:
    """Add the infusion rate and duration (given, or each derived from the other and the dose)."""
    duration = _duration_min(dosage.get("timing"))
    rate = _rate(_first(dosage.get("doseAndRate")))
    timed = rate is not None or duration is not None
    per_kg_min = mg_min = None
    if rate is not None:
        mg_per_min, per_kg = rate
        per_kg_min = mg_per_min if per_kg else (mg_per_min / kg if kg else None)
        mg_min = None if per_kg else mg_per_min
    if duration is None:
        duration = _derived_duration(amount, per_kg_min, mg_min)
    if per_kg_min is None and amount.mg_per_kg is not None and duration:
        per_kg_min = amount.mg_per_kg / duration
    return replace(
        amount,
        timed=timed,
        rate_mg_per_kg_min=round(per_kg_min, 4) if per_kg_min is not None else None,
        duration_min=round(duration, 1) if duration is not None else None,
    )


def _derived_duration(
    amount: Amount, per_kg_min: float | None, mg_min: float | None
) -> float | None:
    if per_kg_min and amount.mg_per_kg is not None:
        return amount.mg_per_kg / per_kg_min
    if mg_min and amount.mg is not None:
        return amount.mg / mg_min
    return None


def _duration_min(timing: Any) -> float | None:
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(repeat, dict):
        return None
    value = _number({"value": repeat.get("duration")})
    minutes = _minutes(str(repeat.get("durationUnit") or "").lower())
    return value * minutes if value and minutes else None


def _rate(dose_and_rate: dict[str, Any]) -> tuple[float, bool] | None:
    """(mg or mg/kg per minute, per kg) from rateQuantity or rateRatio."""
    quantity = dose_and_rate.get("rateQuantity")
    if isinstance(quantity, dict):
        value, parts = _number(quantity), _rate_parts(_unit(quantity))
        if value is None or parts is None:
            return None
        factor, per_kg, minutes = parts
        return value * factor / minutes, per_kg
    ratio = dose_and_rate.get("rateRatio")
    if isinstance(ratio, dict):
        return _ratio_rate(ratio.get("numerator"), ratio.get("denominator"))
    return None


def _ratio_rate(numerator: Any, denominator: Any) -> tuple[float, bool] | None:
    amount, per = _number(numerator), _number(denominator)
    unit, minutes = _unit(numerator), _minutes(_unit(denominator))
    if amount is None or not per or minutes is None:
        return None
    if unit in _MASS_TO_MG:
        return amount * _MASS_TO_MG[unit] / (per * minutes), False
    if unit == "mg/kg":
        return amount / (per * minutes), True
    return None


# ---- the session -------------------------------------------------------------------------


def session_of_day(ctx: FactContext) -> Session | None:
    """Today's KAP administrations as one session: those linked to this encounter (even when
    recorded after encounter-start), else those of T0's local day up to T0."""
    plan = ctx.plan
    if plan is None:
        return None
    drugs = KapDrugs(ctx.valuesets["VS-KETAMINE"], ctx.valuesets["VS-ESKETAMINE"])
    window = ctx.policy.number("session_window_minutes")
    encounter_id = str(plan.encounter.get("id")) if plan.encounter else None
    day = ctx.t0.astimezone(ctx.tz).date()
    doses = kap_doses(ctx, drugs, until=ctx.t0 + timedelta(minutes=window))
    linked = [d for d in doses if encounter_id and d.encounter_id == encounter_id]
    today = [d for d in doses if d.start <= ctx.t0 and d.start.astimezone(ctx.tz).date() == day]
    sessions = aggregate(linked or today, window)
    return sessions[-1] if sessions else None


def session_amount(session: Session, kg: float | None) -> Amount:
    mg = session.mg
    if mg is None:
        return Amount(problem="an administration of this session has no dose in mg")
    amount = _from_mg(mg, kg)
    infused = minutes_between(session.start, session.end)
    if session.route != "iv" or infused <= 0:
        return amount
    per_kg_min = amount.mg_per_kg / infused if amount.mg_per_kg is not None else None
    return replace(
        amount,
        duration_min=infused,
        timed=True,
        rate_mg_per_kg_min=round(per_kg_min, 4) if per_kg_min is not None else None,
    )


# ---- the fact ----------------------------------------------------------------------------


def dosing_weight_kg(ctx: FactContext) -> float | None:
    """The weight mg/kg is computed from: the newest, if recent enough to dose on."""
    weight = newest_weight(ctx)
    if weight is None or days_ago(weight, ctx) > ctx.policy.number("weight_critical_days"):
        return None
    return weight.kg


def _amount(ctx: FactContext, plan: Plan, kg: float | None) -> Amount | None:
    if ctx.phase in ("session", "discharge"):
        session = session_of_day(ctx)
        if session is not None:
            return session_amount(session, kg)
    if plan.order is None or not ctx.valid(plan.order):
        return None
    amount = order_amount(plan.order, plan.drug, kg, ctx)
    return with_rate(amount, _first(plan.order.get("dosageInstruction")), kg)


def build(ctx: FactContext) -> list[Fact]:
    plan = ctx.plan
    if plan is None or plan.drug is None:
        return []
    amount = _amount(ctx, plan, dosing_weight_kg(ctx))
    if amount is None:
        return []
    devices = None
    if plan.drug == "esketamine" and amount.mg is not None:
        devices = round(amount.mg / ESKETAMINE_DEVICE_MG, 2)
    return [
        {
            "t": "dose",
            "computable": amount.problem is None,
            "problem": amount.problem,
            "mg": amount.mg,
            "mg_per_kg": amount.mg_per_kg,
            "weight_based": amount.weight_based,
            "rate_mg_per_kg_min": amount.rate_mg_per_kg_min,
            "duration_min": amount.duration_min,
            "has_duration": amount.timed,
            "devices": devices,
        }
    ]
