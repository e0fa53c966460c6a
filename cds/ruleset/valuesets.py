"""Value sets: which codes (system + code) count as, say, "a benzodiazepine".

A value set file lists codes exactly, ICD-10-CM style prefixes (``F31`` matches ``F31.81``), and
for medications ingredient ``names`` matched as whole words in a coding's display or the concept
text. Names exist because EHRs send clinical-drug codes (SCD/SBD) whose ingredient cannot be
resolved without a terminology server; a code match is always tried first.

Where the catalog defines a set intensionally (SNOMED CT ``<<concept``: the concept and all its
descendants), the file ships the descendants as data: ``expansions``, each a published
expansion with its source, version and date, read like exact codes (``exclude`` still applies).
``scripts/import-valueset-expansion.py`` turns a FHIR ValueSet expansion (VSAC) into one.

A code system has one canonical URI here; the aliases EHRs also send (HL7 OIDs from C-CDA
imports, e.g. ICD-10-CM as ``urn:oid:2.16.840.1.113883.6.90``) are read as that URI, in this one
place (``canonical_system``), by every value-set test and every reader of codings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cds.errors import RuleLoadError

Confidence = Literal["C", "K", "V", "local"]

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
V2_0136 = "http://terminology.hl7.org/CodeSystem/v2-0136"
URI_SYSTEM_NAME = (
    "urn:ietf:rfc:3986"  # "the code is a URI": how a value set lists e.g. identifier systems
)

# HL7 OIDs of the same code systems (HL7 terminology "identifier" of each CodeSystem), the form
# C-CDA documents and their FHIR conversions carry.
_OIDS = {
    "2.16.840.1.113883.6.96": SNOMED,
    "2.16.840.1.113883.6.90": ICD10CM,
    "2.16.840.1.113883.6.1": LOINC,
    "2.16.840.1.113883.6.88": RXNORM,
    "2.16.840.1.113883.6.69": NDC,
    "2.16.840.1.113883.6.12": CPT,
    "2.16.840.1.113883.6.285": HCPCS,
    "2.16.840.1.113883.12.136": V2_0136,
}
SYSTEM_ALIASES: dict[str, str] = {
    **{f"urn:oid:{oid}": uri for oid, uri in _OIDS.items()},
    **dict(_OIDS),  # a bare OID, as some converters leave it
    "http://snomed.info/sct/": SNOMED,
    "https://snomed.info/sct": SNOMED,
    "https://loinc.org": LOINC,
    "http://www.nlm.nih.gov/research/umls/rxnorm/": RXNORM,
    "http://hl7.org/fhir/sid/icd-10-cm/": ICD10CM,
    "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets": HCPCS,
    "urn:oid:2.16.840.1.113883.6.14": HCPCS,  # HCPCS Level II, older OID
}


def canonical_system(system: str) -> str:
    """The one URI a code system is matched under."""
    return SYSTEM_ALIASES.get(system, system) if system else system


class CodeEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str
    code: str | None = None
    prefix: str | None = None
    display: str | None = None
    # Catalog §5 confidence: C confirmed, K well known, V verify before go-live, local = our code.
    confidence: Confidence = "K"
    note: str | None = None

    @model_validator(mode="after")
    def _code_or_prefix(self) -> CodeEntry:
        if (self.code is None) == (self.prefix is None):
            raise ValueError("give exactly one of code or prefix")
        return self


class ExpandedCode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    display: str | None = None


class Expansion(BaseModel):
    """A published expansion standing for one intensional definition of the catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    definition: str = Field(description="what it expands, e.g. SNOMED CT ECL <<13746004")
    system: str
    source: str = Field(description="publisher and value set, e.g. VSAC OID and title")
    url: str
    version: str = Field(description="the source value set's version and code-system edition")
    expanded: date = Field(description="date of the expansion")
    coverage: str = Field(description="how far it covers the definition, what was left out")
    codes: list[ExpandedCode] = Field(min_length=1)


class ValueSetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^VS-[A-Z0-9-]+$")
    title: str
    description: str
    include: list[CodeEntry] = Field(min_length=1)
    exclude: list[CodeEntry] = Field(default_factory=list)
    expansions: list[Expansion] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)
    notes: str | None = None


def _norm_code(system: str, code: str) -> str:
    # ICD-10-CM codes arrive both as "F31.81" and "F3181".
    if "icd-10" in system:
        return code.replace(".", "").upper()
    return code.strip()


@dataclass(frozen=True)
class ValueSet:
    """A loaded value set, ready for fast membership tests."""

    id: str
    title: str
    exact: frozenset[tuple[str, str]]
    prefixes: tuple[tuple[str, str], ...]
    excluded_exact: frozenset[tuple[str, str]]
    excluded_prefixes: tuple[tuple[str, str], ...]
    name_pattern: re.Pattern[str] | None
    verify_codes: tuple[str, ...] = field(default=())

    def matches_coding(self, system: str | None, code: str | None) -> bool:
        if not system or not code:
            return False
        system = canonical_system(system)
        norm = _norm_code(system, code)
        if (system, norm) in self.excluded_exact or _prefixed(self.excluded_prefixes, system, norm):
            return False
        return (system, norm) in self.exact or _prefixed(self.prefixes, system, norm)

    def matches_text(self, text: str | None) -> bool:
        return bool(text and self.name_pattern and _mentions(self.name_pattern, text))


@lru_cache(maxsize=65_536)
def _mentions(pattern: re.Pattern[str], text: str) -> bool:
    """Name search, remembered: medication texts repeat across requests, and a search of a
    long alternation of names costs ~10 µs."""
    return pattern.search(text) is not None


def _prefixed(prefixes: tuple[tuple[str, str], ...], system: str, code: str) -> bool:
    return any(system == s and code.startswith(p) for s, p in prefixes)


def _compile(vs: ValueSetFile) -> ValueSet:
    def split(
        entries: Iterable[CodeEntry],
    ) -> tuple[frozenset[tuple[str, str]], tuple[tuple[str, str], ...]]:
        entries = list(entries)
        exact = frozenset(
            (canonical_system(e.system), _norm_code(e.system, e.code)) for e in entries if e.code
        )
        prefixes = tuple(
            (canonical_system(e.system), _norm_code(e.system, e.prefix))
            for e in entries
            if e.prefix
        )
        return exact, prefixes

    exact, prefixes = split(vs.include)
    exact |= {
        (canonical_system(x.system), _norm_code(x.system, c.code))
        for x in vs.expansions
        for c in x.codes
    }
    ex_exact, ex_prefixes = split(vs.exclude)
    pattern = None
    if vs.names:
        alternatives = "|".join(re.escape(n) for n in sorted(vs.names, key=len, reverse=True))
        pattern = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)
    verify = tuple(f"{e.system}|{e.code or e.prefix}" for e in vs.include if e.confidence == "V")
    return ValueSet(vs.id, vs.title, exact, prefixes, ex_exact, ex_prefixes, pattern, verify)


class OverlayEntry(BaseModel):
    """A site's own codes for a shipped value set (``KAP_CDS_VALUESET_OVERLAY``): merged into it
    at load, so a site maps what its EHR records without editing a rule or a shipped file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^VS-[A-Z0-9-]+$")
    reason: str = Field(min_length=1, description="why these codes mean the same (for audit)")
    include: list[CodeEntry] = Field(default_factory=list)
    exclude: list[CodeEntry] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _adds_something(self) -> OverlayEntry:
        if not (self.include or self.exclude or self.names):
            raise ValueError("give include, exclude or names")
        return self


def _validation_error(path: Path, exc: ValidationError, prefix: str = "") -> RuleLoadError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return RuleLoadError(str(path), None, prefix + loc if loc else prefix or None, err["msg"])


def apply_overlay(
    sources: dict[str, ValueSetFile], overlay: Path
) -> tuple[dict[str, ValueSet], dict[str, ValueSetFile]]:
    """Merge a site overlay (one YAML file, or a directory of ``*.yaml``) into the shipped value
    sets. Each file holds one entry or a list of entries; an entry naming no shipped value set,
    or a malformed one, is a ``RuleLoadError`` with the file, the entry and the reason."""
    if overlay.is_dir():
        paths = sorted(overlay.glob("*.yaml"))
    elif overlay.is_file():
        paths = [overlay]
    else:
        raise RuleLoadError(str(overlay), None, None, "value-set overlay not found")
    merged = dict(sources)
    for path in paths:
        for index, entry in enumerate(_overlay_entries(path)):
            where = f"[{index}]."
            if entry.id not in merged:
                raise RuleLoadError(
                    str(path),
                    None,
                    where + "id",
                    f"unknown value set {entry.id}: an overlay extends a shipped value set",
                )
            base = merged[entry.id]
            merged[entry.id] = base.model_copy(
                update={
                    "include": [*base.include, *entry.include],
                    "exclude": [*base.exclude, *entry.exclude],
                    "names": [*base.names, *entry.names],
                }
            )
    return {vs_id: _compile(vs) for vs_id, vs in merged.items()}, merged


def _overlay_entries(path: Path) -> list[OverlayEntry]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleLoadError(str(path), None, None, f"cannot read: {exc}") from None
    items = raw if isinstance(raw, list) else [raw]
    entries = []
    for index, item in enumerate(items):
        try:
            entries.append(OverlayEntry.model_validate(item))
        except ValidationError as exc:
            raise _validation_error(path, exc, f"[{index}].") from None
    return entries


def load_valuesets(directory: Path) -> tuple[dict[str, ValueSet], dict[str, ValueSetFile]]:
    """Load every ``*.yaml`` under ``directory``; a bad file is a ``RuleLoadError``."""
    compiled: dict[str, ValueSet] = {}
    sources: dict[str, ValueSetFile] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            parsed = ValueSetFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise RuleLoadError(str(path), None, loc, err["msg"]) from None
        except yaml.YAMLError as exc:
            raise RuleLoadError(str(path), None, None, f"not valid YAML: {exc}") from None
        if parsed.id in compiled:
            raise RuleLoadError(str(path), None, "id", f"duplicate value set id {parsed.id}")
        if path.stem != parsed.id:
            raise RuleLoadError(str(path), None, "id", f"file name must be {parsed.id}.yaml")
        compiled[parsed.id] = _compile(parsed)
        sources[parsed.id] = parsed
    return compiled, sources


class ValueSetIndex:
    """Which value sets a coding belongs to, without testing each value set in turn.

    Built once per rule set: exact codes and prefixes are dictionary look-ups (a code is looked
    up under each of its own prefixes), names are tested only for value sets that have them.
    """

    def __init__(self, valuesets: dict[str, ValueSet], sources: dict[str, ValueSetFile]) -> None:
        self._valuesets = valuesets
        self._memo: dict[tuple[str, str], frozenset[str]] = {}
        self._by_code: dict[tuple[str, str], set[str]] = {}
        self._prefix_lengths: dict[str, set[int]] = {}
        for vs_id, vs in valuesets.items():
            for key in vs.exact:
                self._by_code.setdefault(key, set()).add(vs_id)
            for system, prefix in vs.prefixes:
                self._by_code.setdefault((system, prefix), set()).add(vs_id)
                self._prefix_lengths.setdefault(system, set()).add(len(prefix))
        self._named = tuple(v for v in valuesets.values() if v.name_pattern is not None)
        names = sorted(
            {n.lower() for s in sources.values() for n in s.names}, key=len, reverse=True
        )
        self._names = (
            re.compile(rf"\b(?:{'|'.join(re.escape(n) for n in names)})\b", re.IGNORECASE)
            if names
            else None
        )

    def coding_matches(self, system: str | None, code: str | None) -> frozenset[str]:
        """The value sets one coding belongs to; remembered, since the same codes recur in
        every chart (bounded: a chart full of unseen codes cannot grow it without limit)."""
        if not system or not code:
            return frozenset()
        key = (canonical_system(system), code)
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) > 200_000:
                self._memo.clear()
            found = self._memo[key] = frozenset(self._lookup(*key))
        return found

    def _lookup(self, system: str, code: str) -> set[str]:
        norm = _norm_code(system, code)
        keys = {(system, norm)} | {(system, norm[:n]) for n in self._prefix_lengths.get(system, ())}
        found = set().union(*(self._by_code.get(k, set()) for k in keys))
        return {vs_id for vs_id in found if self._valuesets[vs_id].matches_coding(system, code)}

    def text_matches(self, text: str, candidates: tuple[str, ...] | None = None) -> set[str]:
        # The combined pattern rules out most texts with one scan; a text that mentions some
        # name is then tested per value set, so overlapping names keep their exact meaning.
        if not text or self._names is None or not _mentions(self._names, text):
            return set()
        named = (
            self._named if candidates is None else [v for v in self._named if v.id in candidates]
        )
        return {vs.id for vs in named if vs.matches_text(text)}
