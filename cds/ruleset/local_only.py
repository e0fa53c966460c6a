"""Which rules can still only be satisfied by a local code (``kap-cds rules lint``).

A rule is *satisfied* when the data that quiets it is found: a fact under ``none`` (consent,
REMS enrollment, a preparation visit…) or a fact field tested ``false`` (stability documented,
intake documented today). For the facts built from local codes, ``EVIDENCE`` names the value
sets the builder reads and the standard data it also accepts outside value sets. A rule is
listed when, for some such fact, every value set holds only ``urn:kap-cds:`` codes (no standard
code, expansion or name) and no standard source exists: an EHR that does not record the local
code can never quiet it. A site's value-set overlay that maps its own codes takes it off the list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cds.ruleset.model import Pattern, RuleFile
from cds.ruleset.valuesets import ValueSetFile

LOCAL_PREFIX = "urn:kap-cds:"


@dataclass(frozen=True)
class Evidence:
    valuesets: tuple[str, ...]
    standard: tuple[str, ...] = ()  # standard data read outside value sets, in words


# Keyed by fact type, "fact:kind" for facts with kinds, or "fact.field" for a boolean field.
EVIDENCE: dict[str, Evidence] = {
    "rems": Evidence(("VS-REMS-ENROLLED", "VS-REMS-PATIENT-ID", "VS-CONSENT-REMS")),
    "consent": Evidence(("VS-CONSENT-KAP",)),
    "escort": Evidence(("VS-ESCORT-CONFIRMED",), ("Appointment.participant of type v3 ESC",)),
    "exposure_review": Evidence(
        ("VS-EXPOSURE-REVIEW", "VS-URINALYSIS", "VS-COGNITIVE-SCREEN"),
    ),
    "visit:preparation": Evidence(("VS-KAP-PREPARATION",)),
    "visit:dosing": Evidence(("VS-KAP-DOSING",)),
    "visit:integration": Evidence(("VS-KAP-INTEGRATION",)),
    "lab:depression-score": Evidence(("VS-DEPRESSION-SCORE",)),
    "dosing_session.stability_documented": Evidence(
        ("VS-POST-DOSE-STABLE",), ("post-dose vital signs (VS-BP-PANEL, VS-SPO2)",)
    ),
    "intake.documented_today": Evidence(
        ("VS-LAST-SOLID-INTAKE", "VS-LAST-LIQUID-INTAKE", "VS-FASTING-STATUS")
    ),
}


def local_only_valueset(vs: ValueSetFile) -> bool:
    return (
        all(e.system.startswith(LOCAL_PREFIX) for e in vs.include)
        and not vs.expansions
        and not vs.names
    )


def local_only_needs(rule: RuleFile, valuesets: dict[str, ValueSetFile]) -> list[str]:
    """The evidence keys of a rule that only local codes can provide (empty: none)."""
    found = []
    for key in sorted(
        {k for v in rule.variants for k in _needs(v.condition.all, v.condition.none)}
    ):
        evidence = EVIDENCE.get(key)
        if evidence is None or evidence.standard:
            continue
        sets = [valuesets[v] for v in evidence.valuesets if v in valuesets]
        if sets and all(local_only_valueset(vs) for vs in sets):
            found.append(f"{key} ({', '.join(vs.id for vs in sets)})")
    return found


def _needs(patterns: list[Pattern], absent: list[Pattern]) -> Iterator[str]:
    for pattern in absent:
        yield from _keys(pattern.fact, pattern.where)
    for pattern in patterns:
        for field, test in _flat(pattern.where):
            if test is False:
                yield f"{pattern.fact}.{field}"


def _keys(fact: str, where: dict[str, Any]) -> Iterator[str]:
    kinds = [test for field, test in _flat(where) if field == "kind"]
    if not kinds:
        yield fact
    for kind in kinds:
        values = kind.get("in", []) if isinstance(kind, dict) else [kind]
        yield from (f"{fact}:{value}" for value in values)


def _flat(where: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for field, test in where.items():
        if field in ("any", "all") and isinstance(test, list):
            for group in test:
                if isinstance(group, dict):
                    yield from _flat(group)
        else:
            yield field, test
