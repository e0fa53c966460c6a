"""Supporting-check facts (catalog 4.6): ``consent``, ``rems``, ``visit`` and the ``lab`` kinds
``depression-score`` and ``lft``.

Visits and scores are related to the dosing history (previous session, course start), which
``cds.facts.history`` computes the same way the interval rules see it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cds.facts.context import FactContext
from cds.facts.drugs import ESKETAMINE_VS, KETAMINE_VS, ROUTE_CODES, SNOMED, KapDrugs
from cds.facts.fhir import (
    Resource,
    codings,
    concept_text,
    days_between,
    display_date,
    parse_time,
    ref,
)
from cds.facts.history import History, dosing_history
from cds.facts.labs import (
    Candidate,
    base_fact,
    candidates,
    quantity,
    valid_newest_first,
)
from cds.facts.rems import build_rems

Fact = dict[str, Any]


def build(ctx: FactContext) -> list[Fact]:
    if ctx.plan is None:
        return []
    history = dosing_history(ctx)
    return [
        *build_consent(ctx),
        *build_rems(ctx),
        *build_visits(ctx, history),
        *build_labs(ctx, history),
    ]


# ---- consent (KAP-QUAL-001/002) -----------------------------------------------------------

# "Ketamine-assisted psychotherapy" names the therapy, not the drug: a consent "for KAP" is
# not specific to racemic ketamine.
_LOCAL_CONSENT = "urn:kap-cds:consent"
_THERAPY_NAME = re.compile(r"ketamine[\s-]+assisted", re.IGNORECASE)
_KAP_WORDS = re.compile(r"\b(kap|ketamine|esketamine|spravato)\b", re.IGNORECASE)
_DRUG_WORDS = re.compile(r"\b(es|s-)?ketamine\b|\bspravato\b", re.IGNORECASE)
_ALL_ROUTES = re.compile(r"\b(all|any) routes?\b", re.IGNORECASE)
_ROUTE_WORDS = {
    "iv": r"iv|intravenous(ly)?|infusion",
    "im": r"im|intramuscular(ly)?|injection",
    "sublingual": r"sublingual(ly)?|lozenges?|troches?|rdt",
    "buccal": r"buccal",
    "nasal": r"(intra)?nasal(ly)?|spray",
    "oral": r"oral(ly)?|po",
}


@dataclass(frozen=True)
class _Scope:
    """What a consent is for: empty sets mean "not specific" (covers every drug or route)."""

    drugs: frozenset[str]
    routes: frozenset[str]

    def covers(self, drug: str | None, route: str) -> bool:
        if self.drugs and drug not in self.drugs:
            return False
        # SPRAVATO has one route: a consent naming esketamine covers it whatever routes it
        # lists for ketamine. An unknown planned route is the dose rules' finding, not ours.
        if drug == "esketamine" or route == "unknown":
            return True
        return not self.routes or route in self.routes


def build_consent(ctx: FactContext) -> list[Fact]:
    kap_consents = [c for c in ctx.resources("Consent") if _is_kap_consent(c, ctx)]
    facts = [f for c in kap_consents if ctx.valid(c) and (f := _consent_fact(c, ctx))]
    if not facts:
        return []
    # Best first: valid and covering the plan, then valid, then expired; newest among equals.
    best = max(
        facts,
        key=lambda f: (f["valid"] and f["covers_plan"], f["valid"], f["expired"], -f["age_days"]),
    )
    return [best]


def _is_kap_consent(consent: Resource, ctx: FactContext) -> bool:
    if consent.get("status") != "active":
        return False
    if not ctx.in_valueset(consent.get("scope"), "VS-CONSENT-SCOPE-TREATMENT"):
        return False
    categories = consent.get("category") or ()
    if not any(ctx.in_valueset(c, "VS-CONSENT-KAP") for c in categories):
        return False
    local = any(
        (system, code) == (_LOCAL_CONSENT, "kap-treatment")
        for c in categories
        for system, code, _d in codings(c)
    )
    # LOINC 59284-0 is any patient consent: it must also say it is about KAP.
    return local or bool(_KAP_WORDS.search(_consent_text(consent)))


def _consent_text(consent: Resource) -> str:
    parts = [concept_text(consent.get("policyRule"))]
    parts += [d or "" for _s, _c, d in codings(consent.get("policyRule"))]
    for provision in _provisions(consent.get("provision")):
        for concept in provision.get("code") or ():
            parts += [concept_text(concept), *(d or "" for _s, _c, d in codings(concept))]
    attachment = consent.get("sourceAttachment") or {}
    parts.append(str(attachment.get("title") or "") if isinstance(attachment, dict) else "")
    return " ".join(p for p in parts if p)


def _provisions(provision: Any) -> Iterator[dict[str, Any]]:
    if isinstance(provision, dict):
        yield provision
        for nested in provision.get("provision") or ():
            yield from _provisions(nested)


def _consent_fact(consent: Resource, ctx: FactContext) -> Fact | None:
    period = (consent.get("provision") or {}).get("period") or {}
    start = parse_time(period.get("start"), ctx.tz)
    given = parse_time(consent.get("dateTime"), ctx.tz) or start
    if given is None or given > ctx.t0:
        return None  # signed after the planned dose: not consent for it
    end = parse_time(period.get("end"), ctx.tz)
    expired = end is not None and _after_end(ctx.t0, end, period.get("end"))
    started = start is None or start <= ctx.t0
    plan = ctx.plan
    scope = _scope(consent, ctx)
    return {
        "t": "consent",
        "valid": started and not expired,
        "expired": expired,
        "expired_display": display_date(end, ctx.tz) if end and expired else None,
        "age_days": days_between(given, ctx.t0),
        "covers_plan": scope.covers(plan.drug, plan.route) if plan else True,
        "date_display": display_date(given, ctx.tz),
        "ref": ref(consent),
    }


def _after_end(moment: datetime, end: datetime, raw_end: Any) -> bool:
    """Whether ``moment`` is past a period end; a date-only end ("2027-11-01") includes that
    whole day."""
    if isinstance(raw_end, str) and len(raw_end) == 10:
        return moment >= end + timedelta(days=1)
    return moment > end


def _scope(consent: Resource, ctx: FactContext) -> _Scope:
    text = _THERAPY_NAME.sub(" ", _consent_text(consent))
    drugs = {
        "esketamine" if m.group(1) or m.group(0).lower() == "spravato" else "ketamine"
        for m in _DRUG_WORDS.finditer(text)
    }
    routes = (
        set()
        if _ALL_ROUTES.search(text)
        else {
            route
            for route, words in _ROUTE_WORDS.items()
            if re.search(rf"\b({words})\b", text, re.IGNORECASE)
        }
    )
    kap = KapDrugs(ctx.valuesets[KETAMINE_VS], ctx.valuesets[ESKETAMINE_VS])
    for provision in _provisions(consent.get("provision")):
        for concept in provision.get("code") or ():
            for system, code, _d in codings(concept):
                # Codes only: displays were read as text above.
                drug = kap.classify_concept({"coding": [{"system": system, "code": code}]})
                drugs |= {drug} if drug else set()
                if system == SNOMED and code in ROUTE_CODES:
                    routes.add(ROUTE_CODES[code])
    return _Scope(frozenset(drugs), frozenset(routes))


# ---- visits (KAP-QUAL-004/005) ------------------------------------------------------------

_VISIT_KINDS = (
    ("preparation", "VS-KAP-PREPARATION"),
    ("dosing", "VS-KAP-DOSING"),
    ("integration", "VS-KAP-INTEGRATION"),
)
_APPOINTMENT_STATUSES = {"booked", "arrived", "checked-in", "fulfilled"}
_ENCOUNTER_STATUSES = {"planned", "arrived", "triaged", "in-progress", "onleave", "finished"}


def build_visits(ctx: FactContext, history: History) -> list[Fact]:
    facts: list[Fact] = []
    for appointment in ctx.resources("Appointment"):
        if appointment.get("status") in _APPOINTMENT_STATUSES:
            concepts = [*(appointment.get("serviceType") or ()), appointment.get("appointmentType")]
            start = parse_time(appointment.get("start"), ctx.tz)
            facts += _visit_facts(appointment, concepts, start, ctx, history)
    for encounter in ctx.resources("Encounter"):
        if encounter.get("status") in _ENCOUNTER_STATUSES:
            concepts = [*(encounter.get("type") or ()), encounter.get("serviceType")]
            start = parse_time((encounter.get("period") or {}).get("start"), ctx.tz)
            facts += _visit_facts(encounter, concepts, start, ctx, history)
    return facts


def _visit_facts(
    resource: Resource,
    concepts: list[Any],
    start: datetime | None,
    ctx: FactContext,
    history: History,
) -> list[Fact]:
    if start is None:
        return []
    kinds = [kind for kind, vs in _VISIT_KINDS if any(ctx.in_valueset(c, vs) for c in concepts)]
    if not kinds or not ctx.valid(resource):
        return []
    last = history.last
    after = days_between(last.start, start) if last and start >= last.start else None
    return [
        {
            "t": "visit",
            "kind": kind,
            "days_ago": days_between(start, ctx.t0),
            "after_last_session_days": after,
            "date_display": display_date(start, ctx.tz),
            "ref": ref(resource),
        }
        for kind in kinds
    ]


# ---- depression score and liver tests -----------------------------------------------------

_LAB_KINDS = (("depression-score", "VS-DEPRESSION-SCORE"), ("lft", "VS-LFT"))


def build_labs(ctx: FactContext, history: History) -> list[Fact]:
    facts = []
    for kind, vs_id in _LAB_KINDS:
        newest = next(valid_newest_first(ctx, candidates(ctx, (vs_id,))), None)
        if newest is not None:
            facts.append(_lab_fact(kind, newest, ctx, history))
    return facts


def _lab_fact(kind: str, newest: Candidate, ctx: FactContext, history: History) -> Fact:
    course_start = history.course_start
    since = newest.at >= course_start
    measured = quantity(newest.resource)
    integer = newest.resource.get("valueInteger")
    value = measured[0] if measured else (float(integer) if type(integer) is int else None)
    return {
        **base_fact(kind, newest, ctx),
        "value": value,
        "since_course_start": since,
        "course_day": days_between(course_start, newest.at) if since else None,
        "display": concept_text(newest.resource.get("code")) or kind,
    }
