"""The ``rems`` fact (KAP-QUAL-003): SPRAVATO REMS patient enrollment, from any record showing it.

The catalog names three places an EHR keeps it:

* an Observation in VS-REMS-ENROLLED (the local ``rems-patient-enrolled`` code, or a site's own
  code mapped there) answered yes or no;
* the REMS patient identifier on the Patient: an ``identifier`` whose ``type`` is coded (or
  named) in VS-REMS-PATIENT-ID, or whose ``system`` the value set lists as a URI
  (``urn:ietf:rfc:3986``), not marked ``old`` and not past its ``period.end``;
* a signed enrollment Consent: ``status`` active, its category, policy rule or provision coded
  in VS-CONSENT-REMS, or its text naming the REMS, dated by T0 and its period covering T0.

The newest dated record decides, so a later "not enrolled" Observation or a REMS Consent
revoked (``inactive``) after the enrollment ends it. An identifier usually carries no date: it
counts unless a dated "not enrolled" record is newer than its ``period.start``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds.facts.context import FactContext
from cds.facts.fhir import Resource, codings, concept_text, display_date, parse_time, ref
from cds.facts.labs import candidates as observation_candidates
from cds.facts.labs import coded_in, valid_newest_first
from cds.facts.patient import patient_resource
from cds.ruleset.valuesets import URI_SYSTEM_NAME

Fact = dict[str, Any]

_ENDED_CONSENT = {"inactive", "rejected"}


@dataclass(frozen=True)
class Record:
    enrolled: bool
    at: datetime | None  # None: undated (an identifier without a period)
    what: str  # how the card names it
    resource: Resource


def build_rems(ctx: FactContext) -> list[Fact]:
    records = [*_observations(ctx), *_consents(ctx)]
    dated = sorted((r for r in records if r.at is not None), key=lambda r: r.at or ctx.t0)
    newest = dated[-1] if dated else None
    identifier = _identifier(ctx)
    if identifier is not None and (newest is None or _not_older(identifier, newest)):
        newest = identifier
    if newest is None or not newest.enrolled:
        return []
    return [
        {
            "t": "rems",
            "date_display": display_date(newest.at, ctx.tz) if newest.at else None,
            "source": newest.what,
            "ref": ref(newest.resource),
        }
    ]


def _not_older(identifier: Record, newest: Record) -> bool:
    """The identifier stands unless a dated record after its start says otherwise."""
    if newest.enrolled:
        return True
    return identifier.at is not None and newest.at is not None and identifier.at >= newest.at


def _observations(ctx: FactContext) -> list[Record]:
    # The newest valid observation is the only one that can decide.
    found = observation_candidates(ctx, ("VS-REMS-ENROLLED",))
    newest = next(valid_newest_first(ctx, found), None)
    if newest is None:
        return []
    answer = _yes(newest.resource, ctx)
    return [Record(answer, newest.at, "REMS enrollment record", newest.resource)]


def _yes(observation: Resource, ctx: FactContext) -> bool:
    return observation.get("valueBoolean") is True or coded_in(
        observation.get("valueCodeableConcept"), ctx, "VS-ANSWER-YES"
    )


def _identifier(ctx: FactContext) -> Record | None:
    patient = patient_resource(ctx)
    if patient is None:
        return None
    for identifier in patient.get("identifier") or ():
        if not isinstance(identifier, dict) or identifier.get("use") == "old":
            continue
        if not identifier.get("value") or not _is_rems_identifier(identifier, ctx):
            continue
        period = identifier.get("period") or {}
        end = parse_time(period.get("end"), ctx.tz)
        if end is not None and end < ctx.t0:
            continue
        if ctx.valid(patient):
            start = parse_time(period.get("start"), ctx.tz)
            return Record(True, start, "REMS patient ID on file", patient)
    return None


def _is_rems_identifier(identifier: dict[str, Any], ctx: FactContext) -> bool:
    system = identifier.get("system")
    if isinstance(system, str) and ctx.valuesets["VS-REMS-PATIENT-ID"].matches_coding(
        URI_SYSTEM_NAME, system
    ):
        return True
    return ctx.in_valueset(identifier.get("type"), "VS-REMS-PATIENT-ID")


def _consents(ctx: FactContext) -> list[Record]:
    found = []
    for consent in ctx.resources("Consent"):
        status = consent.get("status")
        if status != "active" and status not in _ENDED_CONSENT:
            continue
        if not _is_rems_consent(consent, ctx):
            continue
        period = (consent.get("provision") or {}).get("period") or {}
        given = parse_time(consent.get("dateTime"), ctx.tz) or parse_time(
            period.get("start"), ctx.tz
        )
        if given is None or given > ctx.t0 or not ctx.valid(consent):
            continue
        end = parse_time(period.get("end"), ctx.tz)
        enrolled = status == "active" and (end is None or end >= ctx.t0)
        found.append(Record(enrolled, given, "signed REMS enrollment form", consent))
    return found


def _is_rems_consent(consent: Resource, ctx: FactContext) -> bool:
    concepts = [
        *(consent.get("category") or ()),
        consent.get("policyRule"),
        *((consent.get("provision") or {}).get("code") or ()),
    ]
    if any(ctx.in_valueset(c, "VS-CONSENT-REMS") for c in concepts if c):
        return True
    attachment = consent.get("sourceAttachment")
    title = attachment.get("title") if isinstance(attachment, dict) else None
    policies = " ".join(
        str(p.get("uri") or "") for p in consent.get("policy") or () if isinstance(p, dict)
    )
    texts = [title, policies, *(concept_text(c) for c in concepts if c)]
    texts += [d for c in concepts if c for _s, _c, d in codings(c)]
    return ctx.valuesets["VS-CONSENT-REMS"].matches_text(" ".join(t for t in texts if t))
