"""The ``weight`` fact: the newest usable body weight, normalized to kg (catalog 3.2, 3.5).

Usable = a body-weight Observation (VS-BODY-WEIGHT: LOINC 29463-7, 3141-9) with status final,
amended or corrected, taken at or before T0, whose unit converts to kg. The newest wins whatever
its value (supersession). Units: UCUM ``kg``, ``g``, ``[lb_av]`` and ``[oz_av]`` (EHRs that weigh
in pounds and ounces send the total in ounces); a missing unit or free text such as "lbs" is
converted but flagged ``unit_inferred``, because a lb/kg mix-up is the classic
tenfold-ish mg/kg error KAP-DOSE-002 exists to catch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cds.facts.context import FactContext
from cds.facts.fhir import Resource, display_date, observation_time, ref

Fact = dict[str, Any]

UCUM = "http://unitsofmeasure.org"
LB_TO_KG = 0.45359237
OZ_TO_KG = LB_TO_KG / 16  # avoirdupois ounce; EHR scales and US Core examples chart [oz_av]
WEIGHT_VS = "VS-BODY-WEIGHT"
_USABLE_STATUS = {"final", "amended", "corrected"}
# UCUM codes: converted without a flag.
_UCUM_FACTORS = {"kg": 1.0, "g": 0.001, "[lb_av]": LB_TO_KG, "[oz_av]": OZ_TO_KG}
# Free text EHRs put in Quantity.unit: converted, but flagged as inferred.
_TEXT_FACTORS = (
    (re.compile(r"^(lb|lbs|pound|pounds|#)$"), LB_TO_KG),
    (re.compile(r"^(kgs?|kilo|kilos|kilogram|kilograms)$"), 1.0),
    (re.compile(r"^(grams?|gm)$"), 0.001),
    (re.compile(r"^(oz|ozs|ounces?)$"), OZ_TO_KG),
)


@dataclass(frozen=True)
class Weight:
    kg: float
    at: datetime
    unit_inferred: bool
    original: str
    ref: str


def to_kg(quantity: Any) -> tuple[float, bool] | None:
    """(kg, unit_inferred) for a valueQuantity, or None when the unit cannot be converted."""
    if not isinstance(quantity, dict):
        return None
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    code, unit = quantity.get("code"), quantity.get("unit")
    for candidate in (code, unit):
        if isinstance(candidate, str) and candidate in _UCUM_FACTORS:
            return float(value) * _UCUM_FACTORS[candidate], False
    if not code and not unit:
        # No unit at all: EHR weight fields default to kg; flagged so a human confirms it.
        return float(value), True
    text = str(unit or code).strip().lower().rstrip(".")
    for pattern, factor in _TEXT_FACTORS:
        if pattern.match(text):
            return float(value) * factor, True
    return None


def _original(quantity: dict[str, Any]) -> str:
    unit = quantity.get("code") or quantity.get("unit") or "(no unit)"
    return f"{quantity.get('value')} {unit}"


def usable_weights(ctx: FactContext) -> list[Weight]:
    """Every usable weight at or before T0, newest first."""
    return ctx.cached("weights", lambda: _usable_weights(ctx))


def _usable_weights(ctx: FactContext) -> list[Weight]:
    weights: list[Weight] = []
    for observation in ctx.with_code("Observation", WEIGHT_VS):
        if observation.get("status") not in _USABLE_STATUS:
            continue
        # Validate before reading nested fields: valid R4 guarantees their types.
        if not ctx.in_valueset(observation.get("code"), WEIGHT_VS) or not ctx.valid(observation):
            continue
        found = _weight(observation, ctx)
        if found is not None and found.at <= ctx.t0:
            weights.append(found)
    return sorted(weights, key=lambda w: (w.at, w.ref), reverse=True)


def _weight(observation: Resource, ctx: FactContext) -> Weight | None:
    when = observation_time(observation, ctx.tz)
    quantity = observation.get("valueQuantity")
    converted = to_kg(quantity)
    if when is None or converted is None or not isinstance(quantity, dict):
        return None
    kg, inferred = converted
    return Weight(round(kg, 1), when, inferred, _original(quantity), ref(observation))


def newest_weight(ctx: FactContext) -> Weight | None:
    weights = usable_weights(ctx)
    return weights[0] if weights else None


def days_ago(weight: Weight, ctx: FactContext) -> int:
    """Calendar days (local) from the weighing to T0: the catalog's "31-90 days old"."""
    return (ctx.t0.astimezone(ctx.tz).date() - weight.at.astimezone(ctx.tz).date()).days


def _change_pct(weights: list[Weight], ctx: FactContext) -> float | None:
    """Size of the change (%) of the newest weight vs the previous one within the policy window:
    unsigned, so one policy limit covers a lb-as-kg entry (up) and a kg-as-lb entry (down)."""
    if len(weights) < 2:
        return None
    newest, previous = weights[0], weights[1]
    window = timedelta(days=ctx.policy.number("weight_change_window_days"))
    if newest.at - previous.at > window:
        return None
    return round(abs(newest.kg - previous.kg) / previous.kg * 100, 1)


def build(ctx: FactContext) -> list[Fact]:
    weights = usable_weights(ctx)
    if not weights:
        return []
    newest = weights[0]
    return [
        {
            "t": "weight",
            "kg": newest.kg,
            "days_ago": days_ago(newest, ctx),
            "unit_inferred": newest.unit_inferred,
            "original": newest.original,
            "change_pct": _change_pct(weights, ctx),
            "date_display": display_date(newest.at, ctx.tz),
            "ref": newest.ref,
        }
    ]
