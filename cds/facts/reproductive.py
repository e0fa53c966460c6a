"""``pregnancy`` and ``breastfeeding`` facts (catalog KAP-CI-022/023/024).

Both collect dated pieces of evidence (status observations, hCG results, Conditions, end-of-
pregnancy events) and keep the newest within the policy look-back: newer evidence supersedes
older, so a negative test after a positive one means "not pregnant". Two exceptions:

* a pregnancy status answered "not pregnant" or "unknown" (what the patient reports) does not
  refute a positive hCG: only a negative test or a recorded end of pregnancy does;
* a puerperium diagnosis (ICD-10-CM "... complicating the puerperium", VS-PUERPERIUM) says the
  pregnancy has ended, although its O-code is in the pregnancy chapter.

A breastfeeding status answered in words ("yes", "not breastfeeding") is read like a coded one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from cds.facts.context import FactContext
from cds.facts.fhir import (
    Resource,
    concept_text,
    condition_abatement,
    condition_onset,
    days_between,
    display_date,
    parse_time,
    ref,
    status_code,
)
from cds.facts.labs import candidates, coded_in, qualitative, quantity, valid_newest_first

Fact = dict[str, Any]

_UNUSABLE_VERIFICATION = {"refuted", "entered-in-error"}
_ACTIVE_CLINICAL = {"active", "recurrence", "relapse"}
_HCG_UNITS = {"m[iu]/ml", "miu/ml", "[iu]/l", "iu/l", ""}  # 1 IU/L == 1 mIU/mL


@dataclass(frozen=True)
class Evidence:
    status: str  # pregnant / not-pregnant / unknown (breastfeeding: yes / no)
    at: datetime
    source: str
    ref: str
    kind: str = "record"  # test (hCG), report (status answer), record (conditions, events)
    note: str = ""  # a later answer that did not refute this evidence, in words


def _newest(items: list[Evidence]) -> Evidence | None:
    # Ties: the affirmative answer wins (a safety check should not be silenced by a tie).
    affirmative = ("pregnant", "yes")
    return max(items, key=lambda e: (e.at, e.status in affirmative), default=None)


def _fact(kind: str, evidence: Evidence, ctx: FactContext) -> Fact:
    return {
        "t": kind,
        "status": evidence.status,
        "days_ago": days_between(evidence.at, ctx.t0),
        "date_display": display_date(evidence.at, ctx.tz),
        "ref": evidence.ref,
    }


# ---- Conditions and Procedures -----------------------------------------------------------


def _usable_conditions(ctx: FactContext, vs_id: str) -> list[Resource]:
    return [
        c
        for c in ctx.in_code_valueset("Condition", vs_id)
        if status_code(c.get("verificationStatus")) not in _UNUSABLE_VERIFICATION and ctx.valid(c)
    ]


def _asserted_at(condition: Resource, ctx: FactContext) -> datetime | None:
    """When the chart last said the condition holds: the later of onset and recordedDate (a
    pregnancy recorded today with an onset 8 weeks ago is today's evidence)."""
    recorded = parse_time(condition.get("recordedDate"), ctx.tz)
    moments = [
        m for m in (condition_onset(condition, ctx.tz), recorded) if m is not None and m <= ctx.t0
    ]
    return max(moments, default=None)


def _is_current(condition: Resource, ctx: FactContext) -> bool:
    """Current at T0. A dated abatement decides on its own: a chart exported after the
    pregnancy ended says "resolved", yet at a T0 before that date the condition held."""
    abated = condition_abatement(condition, ctx.tz)
    if abated is not None:
        return abated > ctx.t0
    clinical = status_code(condition.get("clinicalStatus")) or "active"
    return (
        clinical in _ACTIVE_CLINICAL
        and condition.get("abatementBoolean") is not True
        and not condition.get("abatementString")
        and not condition.get("abatementAge")
        and not condition.get("abatementRange")
    )


def _pregnancy_ends(ctx: FactContext) -> list[Evidence]:
    """Delivery, loss or termination (conditions and completed procedures): not pregnant then."""
    ends = []
    for vs_id in ("VS-PREGNANCY-END", "VS-PUERPERIUM"):
        for condition in _usable_conditions(ctx, vs_id):
            at = _asserted_at(condition, ctx)
            if at is not None:
                label = _label(condition, "end of pregnancy")
                ends.append(Evidence("not-pregnant", at, label, ref(condition)))
    for procedure in ctx.in_code_valueset("Procedure", "VS-PREGNANCY-END-PROCEDURE"):
        if procedure.get("status") != "completed":
            continue
        period = procedure.get("performedPeriod") or {}
        at = parse_time(
            procedure.get("performedDateTime") or period.get("end") or period.get("start"), ctx.tz
        )
        if at is not None and at <= ctx.t0 and ctx.valid(procedure):
            ends.append(
                Evidence(
                    "not-pregnant", at, _label(procedure, "delivery/termination"), ref(procedure)
                )
            )
    return ends


def _label(resource: Resource, fallback: str) -> str:
    text = concept_text(resource.get("code")) or fallback
    return text if len(text) <= 40 else text[:39] + "…"


# ---- pregnancy ---------------------------------------------------------------------------


def _status_observation(observation: Resource, vs_id: str, ctx: FactContext) -> str | None:
    if vs_id == "VS-PREGNANCY-STATUS":
        value = observation.get("valueCodeableConcept")
        for answer, status in (
            ("VS-ANSWER-PREGNANT", "pregnant"),
            ("VS-ANSWER-NOT-PREGNANT", "not-pregnant"),
            ("VS-ANSWER-UNKNOWN", "unknown"),
        ):
            if coded_in(value, ctx, answer):
                return status
        return None
    if vs_id == "VS-HCG-QUALITATIVE":
        result = qualitative(observation, ctx)
        return None if result is None else ("pregnant" if result == "positive" else "not-pregnant")
    return _quantitative_hcg(observation, ctx)


def _quantitative_hcg(observation: Resource, ctx: FactContext) -> str | None:
    value = quantity(observation)
    if value is None or value[1].replace(" ", "").lower() not in _HCG_UNITS:
        return None  # a unit we cannot compare with the cutoff is not judged
    comparator = (observation.get("valueQuantity") or {}).get("comparator")
    if comparator in ("<", "<="):
        return "not-pregnant"  # "< 5": below the reporting limit
    cutoff = ctx.policy.number("hcg_positive_miu_ml")
    return "pregnant" if value[0] >= cutoff else "not-pregnant"


def _pregnancy_observations(ctx: FactContext, lookback: float) -> list[Evidence]:
    """The newest test and the newest status answer that say something (older ones of the same
    kind cannot win)."""
    found = candidates(
        ctx, ("VS-PREGNANCY-STATUS", "VS-HCG-QUALITATIVE", "VS-HCG-QUANTITATIVE"), lookback
    )
    newest: dict[str, Evidence] = {}
    for candidate in valid_newest_first(ctx, found):
        kind = "report" if candidate.vs_id == "VS-PREGNANCY-STATUS" else "test"
        if kind in newest:
            continue
        status = _status_observation(candidate.resource, candidate.vs_id, ctx)
        if status is not None:
            source = _label(candidate.resource, "pregnancy test")
            newest[kind] = Evidence(status, candidate.at, source, ref(candidate.resource), kind)
        if len(newest) == 2:
            break
    return list(newest.values())


def _decide(evidence: list[Evidence], ctx: FactContext) -> Evidence | None:
    """Newest wins, except that a status answer of "not pregnant" or "unknown" does not refute
    a positive test: the test stands until a negative test or an end of pregnancy."""
    newest = _newest(evidence)
    if newest is None or newest.kind != "report" or newest.status == "pregnant":
        return newest
    without_reports = _newest([e for e in evidence if e.kind != "report"])
    if without_reports is None or without_reports.kind != "test":
        return newest
    if without_reports.status != "pregnant":
        return newest
    said = "not pregnant" if newest.status == "not-pregnant" else "unknown"
    when = display_date(newest.at, ctx.tz)
    note = f" Pregnancy status answered {said} on {when}: an answer does not refute a test."
    return replace(without_reports, note=note)


@dataclass(frozen=True)
class _PregnancyConditions:
    recent: list[Evidence]  # current pregnancy Conditions with onset within the look-back
    stale: list[Evidence]  # current pregnancy Conditions older than the look-back


def _pregnancy_conditions(
    ctx: FactContext, ends: list[Evidence], earliest: datetime
) -> _PregnancyConditions:
    recent: list[Evidence] = []
    stale: list[Evidence] = []
    for condition in _usable_conditions(ctx, "VS-PREGNANCY"):
        onset, at = condition_onset(condition, ctx.tz), _asserted_at(condition, ctx)
        if onset is None or at is None or not _is_current(condition, ctx):
            continue
        if ctx.in_valueset(condition.get("code"), "VS-PUERPERIUM"):
            continue  # after the delivery: an end of pregnancy, counted in _pregnancy_ends
        if any(end.at >= onset for end in ends):
            continue  # delivered / ended after this pregnancy began
        item = Evidence("pregnant", at, _label(condition, "pregnancy diagnosis"), ref(condition))
        (recent if onset >= earliest else stale).append(item)
    return _PregnancyConditions(recent, stale)


def _abated_pregnancies(ctx: FactContext) -> list[Evidence]:
    """A pregnancy Condition abated on a date: not pregnant from then on."""
    items = []
    for condition in _usable_conditions(ctx, "VS-PREGNANCY"):
        at = condition_abatement(condition, ctx.tz)
        if at is not None and at <= ctx.t0:
            items.append(Evidence("not-pregnant", at, "pregnancy ended (abated)", ref(condition)))
    return items


def build_pregnancy(ctx: FactContext) -> list[Fact]:
    lookback = ctx.policy.number("pregnancy_lookback_days")
    earliest = ctx.t0 - timedelta(days=lookback)
    ends = _pregnancy_ends(ctx) + _abated_pregnancies(ctx)
    conditions = _pregnancy_conditions(ctx, ends, earliest)
    evidence = [e for e in ends if e.at >= earliest]
    evidence += conditions.recent + _pregnancy_observations(ctx, lookback)
    newest = _decide(evidence, ctx)
    # A stale entry is worth a look unless newer evidence already says "not pregnant".
    stale = _newest(conditions.stale) if newest is None or newest.status != "not-pregnant" else None
    if newest is not None:
        shown = newest
    elif stale is not None:
        shown = Evidence("unknown", stale.at, stale.source, stale.ref)  # no in-window answer
    else:
        return []
    return [
        {
            **_fact("pregnancy", shown, ctx),
            "source_display": shown.source,
            "later_answer_display": shown.note,
            "stale_condition": stale is not None,
        }
    ]


# ---- breastfeeding -----------------------------------------------------------------------


def _breastfeeding_answer(observation: Resource, vs_id: str, ctx: FactContext) -> str | None:
    value = observation.get("valueCodeableConcept")
    if coded_in(value, ctx, "VS-ANSWER-BREASTFEEDING-NO") or coded_in(value, ctx, "VS-ANSWER-NO"):
        return "no"
    if observation.get("valueBoolean") is False:
        return "no"
    if coded_in(value, ctx, "VS-ANSWER-BREASTFEEDING-YES") or coded_in(value, ctx, "VS-ANSWER-YES"):
        return "yes"
    if observation.get("valueBoolean") is True:
        return "yes"
    worded = _worded_answer(observation)
    if worded is not None:
        return worded
    # An observation coded "Breastfeeding (mother)" with no answer is itself the finding.
    return "yes" if vs_id == "VS-BREASTFEEDING" and value is None else None


_NO_WORDS = re.compile(
    r"\b(no|n|not|never|none|denies|stopped|weaned|formula[- ]fed|formula only)\b", re.IGNORECASE
)
_YES_WORDS = re.compile(
    r"\b(yes|y|breast[- ]?feeding|nursing|lactating|pumping|expressing|chestfeeding)\b",
    re.IGNORECASE,
)


def _worded_answer(observation: Resource) -> str | None:
    """An answer given in words: valueString, or a valueCodeableConcept with text and no coding
    we know. A negation wins ("not breastfeeding", "no longer nursing")."""
    value = observation.get("valueCodeableConcept")
    text = observation.get("valueString")
    if not isinstance(text, str):
        text = concept_text(value) if isinstance(value, dict) else ""
    if not text.strip():
        return None
    if _NO_WORDS.search(text):
        return "no"
    return "yes" if _YES_WORDS.search(text) else None


def _breastfeeding_observations(ctx: FactContext, lookback: float) -> list[Evidence]:
    found = candidates(ctx, ("VS-BREASTFEEDING-STATUS", "VS-BREASTFEEDING"), lookback)
    for candidate in valid_newest_first(ctx, found):
        answer = _breastfeeding_answer(candidate.resource, candidate.vs_id, ctx)
        if answer is not None:
            return [Evidence(answer, candidate.at, "observation", ref(candidate.resource))]
    return []


def _breastfeeding_conditions(ctx: FactContext) -> list[Evidence]:
    items = []
    for condition in _usable_conditions(ctx, "VS-BREASTFEEDING"):
        at, ended = _asserted_at(condition, ctx), condition_abatement(condition, ctx.tz)
        if _is_current(condition, ctx) and at is not None:
            items.append(Evidence("yes", at, "condition", ref(condition)))
        elif ended is not None and ended <= ctx.t0:
            items.append(Evidence("no", ended, "condition ended", ref(condition)))
    return items


def build_breastfeeding(ctx: FactContext) -> list[Fact]:
    lookback = ctx.policy.number("breastfeeding_lookback_days")
    earliest = ctx.t0 - timedelta(days=lookback)
    evidence = [e for e in _breastfeeding_conditions(ctx) if e.at >= earliest]
    newest = _newest(evidence + _breastfeeding_observations(ctx, lookback))
    return [_fact("breastfeeding", newest, ctx)] if newest else []


def build(ctx: FactContext) -> list[Fact]:
    return build_pregnancy(ctx) + build_breastfeeding(ctx)
