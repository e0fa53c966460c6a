"""``lab`` facts of kind ``egfr`` and ``drug-screen``, and the Observation readers that the
vitals and reproductive builders share (catalog 3.2: usable status, time, newest wins).

Builders look at raw JSON first (status, code, time) and validate with the R4B models only the
observations they are about to use: a Synthea bundle holds hundreds of observations.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cds.facts.context import FactContext
from cds.facts.fhir import (
    Resource,
    codings,
    concept_text,
    days_between,
    display_date,
    observation_time,
    ref,
)

Fact = dict[str, Any]

USABLE_STATUS = frozenset({"final", "amended", "corrected"})


# ---- shared Observation readers ----------------------------------------------------------


def observed_at(observation: Resource, ctx: FactContext) -> datetime | None:
    return observation_time(observation, ctx.tz)


def coded_in(concept: Any, ctx: FactContext, vs_id: str) -> bool:
    """Code-only membership test (no display/name matching): cheap enough for every
    observation of a large bundle."""
    return vs_id in ctx.coded_in(concept)


@dataclass(frozen=True)
class Candidate:
    """A usable-looking observation (status, code and time checked; not yet validated)."""

    resource: Resource
    vs_id: str
    at: datetime


def candidates(
    ctx: FactContext,
    vs_ids: tuple[str, ...],
    lookback_days: float | None = None,
    until: datetime | None = None,
) -> list[Candidate]:
    """Observations with a usable status, a code in one of ``vs_ids`` and a time at or
    before ``until`` (default T0; and within the look-back when given), newest first. Not
    validated yet."""
    latest = until or ctx.t0
    earliest = ctx.t0 - timedelta(days=lookback_days) if lookback_days is not None else None
    found = []
    seen: set[int] = set()
    for vs_id, observation in ((v, o) for v in vs_ids for o in ctx.with_code("Observation", v)):
        if id(observation) in seen or observation.get("status") not in USABLE_STATUS:
            continue
        seen.add(id(observation))
        at = observed_at(observation, ctx)
        if at is None or at > latest or (earliest is not None and at < earliest):
            continue
        found.append(Candidate(observation, vs_id, at))
    found.sort(key=lambda c: c.at, reverse=True)
    return found


def valid_newest_first(ctx: FactContext, found: list[Candidate]) -> Iterator[Candidate]:
    """Validate lazily: the newest usable candidate is usually the only one validated."""
    for candidate in found:
        if ctx.valid(candidate.resource):
            yield candidate


_NUMBER = re.compile(r"^\s*([<>]=?)?\s*(\d+(?:\.\d+)?)\s*$")


def quantity(observation: Resource) -> tuple[float, str] | None:
    """(value, unit) of valueQuantity, or of a numeric valueString such as ">60"."""
    value = observation.get("valueQuantity")
    if isinstance(value, dict) and isinstance(value.get("value"), int | float):
        unit = str(value.get("code") or value.get("unit") or "")
        return float(value["value"]), unit
    match = _NUMBER.match(str(observation.get("valueString") or ""))
    return (float(match.group(2)), "") if match else None


_POSITIVE_TEXT = re.compile(r"\b(positive|detected|present)\b", re.IGNORECASE)
_NEGATIVE_TEXT = re.compile(r"\b(negative|not detected|none detected|absent)\b", re.IGNORECASE)


def qualitative(observation: Resource, ctx: FactContext) -> str | None:
    """ "positive" / "negative" from the coded value, else the interpretation (POS/NEG), else
    plain text; None when the result says neither."""
    concepts = [observation.get("valueCodeableConcept"), *(observation.get("interpretation") or ())]
    for concept in concepts:
        if coded_in(concept, ctx, "VS-ANSWER-POSITIVE"):
            return "positive"
        if coded_in(concept, ctx, "VS-ANSWER-NEGATIVE"):
            return "negative"
    value = observation.get("valueCodeableConcept")
    text = str(observation.get("valueString") or concept_text(value))
    if _NEGATIVE_TEXT.search(text):  # first: "not detected" also contains "detected"
        return "negative"
    return "positive" if _POSITIVE_TEXT.search(text) else None


def base_fact(kind: str, candidate: Candidate, ctx: FactContext) -> Fact:
    return {
        "t": "lab",
        "kind": kind,
        "days_ago": days_between(candidate.at, ctx.t0),
        "date_display": display_date(candidate.at, ctx.tz),
        "ref": ref(candidate.resource),
    }


# ---- eGFR --------------------------------------------------------------------------------


def build_egfr(ctx: FactContext) -> list[Fact]:
    """The newest usable numeric eGFR within the policy look-back (newest wins, whatever its
    value: a recovered kidney function supersedes an older low result)."""
    found = candidates(ctx, ("VS-EGFR",), ctx.policy.number("egfr_lookback_days"))
    for candidate in valid_newest_first(ctx, found):
        value = quantity(candidate.resource)
        if value is None or not _egfr_unit(value[1]):
            continue
        return [
            {
                **base_fact("egfr", candidate, ctx),
                "value": value[0],
                "display": _loinc_label("eGFR", candidate, ctx),
            }
        ]
    return []


def _egfr_unit(unit: str) -> bool:
    # mL/min/{1.73_m2}, mL/min/1.73m2, mL/min (Synthea): all the same measure; anything else
    # (e.g. a creatinine unit sent under an eGFR code) is not judged.
    return unit == "" or unit.replace(" ", "").lower().startswith("ml/min")


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _loinc_label(name: str, candidate: Candidate, ctx: FactContext) -> str:
    """ "eGFR (LOINC 62238-1)": the long LOINC display is unreadable on a card."""
    vs = ctx.valuesets[candidate.vs_id]
    code = next(
        (c for s, c, _d in codings(candidate.resource.get("code")) if vs.matches_coding(s, c)), None
    )
    return f"{name} (LOINC {code})" if code else name


def _substance(observation: Resource) -> str:
    """ "Opiates" from "Opiates [Presence] in Urine by Screen method"."""
    text = concept_text(observation.get("code")) or "urine drug screen"
    return _short(text.split(" [", 1)[0].strip() or text)


# ---- urine drug screen -------------------------------------------------------------------

# The medication class whose prescription can explain a positive screen, by substance named in
# the test's code display or text. Cocaine, cannabinoids etc. have none: always "non-prescribed".
# KAP-CI-020 has one variant per class listed here: add a variant before adding a class, or a
# positive of that class would never fire.
_PRESCRIBABLE = (
    (
        re.compile(r"opiat|opioid|fentanyl|oxycod|methadon|buprenorph|morphin|codein", re.I),
        "VS-OPIOID",
    ),
    (re.compile(r"amphet|methylphen", re.I), "VS-STIMULANT"),
    (re.compile(r"benzodiaz", re.I), "VS-BENZODIAZEPINE"),
)


def build_drug_screens(ctx: FactContext) -> list[Fact]:
    """Every substance with a positive urine drug screen within the policy look-back (its
    newest positive). A later negative does not erase the recent use the positive shows."""
    found = candidates(
        ctx, ("VS-URINE-DRUG-SCREEN",), ctx.policy.number("drug_screen_lookback_days")
    )
    facts: dict[str, Fact] = {}
    for candidate in valid_newest_first(ctx, found):
        substance = _substance(candidate.resource)
        if substance in facts or qualitative(candidate.resource, ctx) != "positive":
            continue
        fact = {
            **base_fact("drug-screen", candidate, ctx),
            "positive": True,
            "display": f"{substance} (urine screen): positive",
        }
        explained_by = next(
            (
                vs
                for pattern, vs in _PRESCRIBABLE
                if pattern.search(substance) and vs in ctx.valuesets
            ),
            None,
        )
        facts[substance] = {**fact, "prescribable_vs": explained_by}
    return list(facts.values())


def build(ctx: FactContext) -> list[Fact]:
    return build_egfr(ctx) + build_drug_screens(ctx)
