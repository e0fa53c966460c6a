"""Narrow prefetch templates: ask the EHR only for the resources a rule can use.

Generated from ``cds.facts.reads`` (statuses and Observation value sets the builders read) and
the loaded value sets (their codes, a site's additions included), so the templates and the rules
stay in step. FHIR search syntax: tokens as ``system|code``, alternatives comma-separated, with
``\\``, ``,``, ``|`` and ``$`` in a code escaped by a backslash (FHIR R4 search, "Escaping").

``matches`` answers a narrowed search on a list of resources the way a FHIR server would, for the
measurement in ``bench/prefetch_bytes.py`` and for the tests that prove the rules lose nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cds.facts.reads import OBSERVATION_VALUESETS, STATUSES
from cds.ruleset.valuesets import ValueSetFile

logger = logging.getLogger(__name__)

PATIENT = "{{context.patientId}}"
# Many EHRs and proxies refuse request lines over 8 KB; stay well under with the query.
MAX_TEMPLATE_CHARS = 4000


@dataclass(frozen=True)
class NarrowKey:
    key: str
    resource_type: str
    statuses: frozenset[str]
    valuesets: tuple[str, ...] = ()  # Observation.code must be in one of these


NARROW_KEYS: tuple[NarrowKey, ...] = (
    NarrowKey("observations", "Observation", STATUSES["Observation"], OBSERVATION_VALUESETS),
    NarrowKey("medicationStatements", "MedicationStatement", STATUSES["MedicationStatement"]),
    NarrowKey(
        "medicationAdministrations",
        "MedicationAdministration",
        STATUSES["MedicationAdministration"],
    ),
    NarrowKey("procedures", "Procedure", STATUSES["Procedure"]),
    NarrowKey("consents", "Consent", STATUSES["Consent"]),
)


def escape_token(value: str) -> str:
    for char in ("\\", ",", "|", "$"):
        value = value.replace(char, "\\" + char)
    return value


def _codes(valuesets: Mapping[str, ValueSetFile], ids: Iterable[str]) -> list[str] | None:
    """``system|code`` tokens of the value sets, or None when one cannot be searched by exact
    code (a prefix entry, or the value set is missing): then the template keeps every code."""
    tokens: set[str] = set()
    for vs_id in ids:
        file = valuesets.get(vs_id)
        if file is None or any(entry.prefix for entry in file.include):
            logger.warning("prefetch: %s cannot be searched by exact code; no code filter", vs_id)
            return None
        tokens |= {f"{e.system}|{escape_token(e.code or '')}" for e in file.include}
    return sorted(tokens)


def _template(spec: NarrowKey, valuesets: Mapping[str, ValueSetFile]) -> str:
    query = f"{spec.resource_type}?patient={PATIENT}&status={','.join(sorted(spec.statuses))}"
    codes = _codes(valuesets, spec.valuesets) if spec.valuesets else None
    if codes:
        with_codes = f"{query}&code={','.join(codes)}"
        if len(with_codes) <= MAX_TEMPLATE_CHARS:
            return with_codes
        logger.warning(
            "prefetch: %s code list is %d characters, over %d; asking by status only",
            spec.key,
            len(with_codes),
            MAX_TEMPLATE_CHARS,
        )
    return query


def narrow_templates(valuesets: Mapping[str, ValueSetFile]) -> dict[str, str]:
    """Prefetch key -> narrowed template, for the keys that can be narrowed safely."""
    return {spec.key: _template(spec, valuesets) for spec in NARROW_KEYS}


# ---- answering a narrowed search on a list of resources -----------------------------------


def _parse(template: str) -> tuple[str, dict[str, list[str]]]:
    resource_type, _, query = template.partition("?")
    params: dict[str, list[str]] = {}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name != "patient":
            params[name] = _split_unescaped(value)
    return resource_type, params


def _split_unescaped(value: str) -> list[str]:
    items, current, escaped = [], "", False
    for char in value:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    return items


def _token(value: str) -> tuple[str | None, str]:
    system, bar, code = value.partition("|")
    return (system, code) if bar else (None, value)


def _code_matches(resource: Mapping[str, Any], tokens: list[str]) -> bool:
    wanted = [_token(t) for t in tokens]
    for coding in _literal_codings(resource.get("code")):
        for system, code in wanted:
            if coding.get("code") == code and system in (None, coding.get("system")):
                return True
    return False


def _literal_codings(concept: Any) -> Iterable[Mapping[str, Any]]:
    """The codings as sent (a server matches the literal system), through the shape deviations
    EHRs send: a list of concepts where R4 has one, one object where it has a list."""
    for one in concept if isinstance(concept, list) else (concept,):
        found = one.get("coding") if isinstance(one, Mapping) else None
        for coding in (found,) if isinstance(found, Mapping) else found or ():
            if isinstance(coding, Mapping):
                yield coding


def matches(template: str, resource: Mapping[str, Any]) -> bool:
    """Whether a FHIR server answering ``template`` would return ``resource``."""
    resource_type, params = _parse(template)
    if resource.get("resourceType") != resource_type:
        return False
    if "status" in params and resource.get("status") not in params["status"]:
        return False
    return "code" not in params or _code_matches(resource, params["code"])


def narrow_prefetch(prefetch: Mapping[str, Any], templates: Mapping[str, str]) -> dict[str, Any]:
    """``prefetch`` as an EHR executing ``templates`` would send it: the entries of each
    narrowed key's Bundle that the narrowed search returns (other keys unchanged)."""
    narrowed = dict(prefetch)
    for key, template in templates.items():
        bundle = prefetch.get(key)
        if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
            continue
        entries = [
            entry
            for entry in bundle.get("entry") or ()
            if isinstance(entry, Mapping) and matches(template, entry.get("resource") or {})
        ]
        narrowed[key] = {**bundle, "entry": entries}
        if "total" in bundle:
            narrowed[key]["total"] = len(entries)
    return narrowed
