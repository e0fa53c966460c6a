"""One pass over the prefetch, shared by every fact builder of a request.

The gathered data (``PatientData``) is raw FHIR JSON by resource type. Fact builders ask the
same questions of it again and again: which Observations are coded in a value set, when did
this Observation hold, is this resource valid FHIR R4. ``PrefetchIndex`` answers each question
once per request: a resource type is scanned the first time a builder asks about it (one pass
that files every resource under the value sets and the (system, code) pairs of its code), times
are parsed once per resource, and R4B validation runs once per resource, only for the resources
a builder actually reads (the index never validates on its own: see ``FactContext.valid``).

It is the one place that knows how a resource's code and time are laid out; builders read it
through ``FactContext``. It lives for one request and holds nothing across requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cds.facts.fhir import Resource, codings, observation_time, ref, validate_r4b
from cds.pipeline_types import PatientData
from cds.ruleset.valuesets import ValueSet, ValueSetIndex

Coding = tuple[str, str]
_NONE: frozenset[str] = frozenset()


def _coding_key(concept: Any) -> tuple[tuple[Any, Any], ...] | None:
    """(system, code) of each coding of a CodeableConcept, as sent; None when the JSON is not
    shaped like one (or holds unhashable values), which ``codings`` then reads carefully."""
    if not isinstance(concept, dict):
        return ()
    coding = concept.get("coding")
    if coding is None:
        return ()
    if not isinstance(coding, list):
        return None
    try:
        key = tuple([(c.get("system"), c.get("code")) for c in coding])
        hash(key)
    except (AttributeError, TypeError):  # a coding that is not an object, a list as a code...
        return None
    return key


class PrefetchIndex:
    def __init__(
        self,
        data: PatientData,
        tz: ZoneInfo,
        valuesets: dict[str, ValueSet],
        codes: ValueSetIndex | None = None,
    ) -> None:
        self.data = data
        self.tz = tz
        self._valuesets = valuesets
        self._codes = codes
        self._coded: dict[int, frozenset[str]] = {}
        self._by_codings: dict[tuple[tuple[Any, Any], ...], frozenset[str]] = {}
        self._by_valueset: dict[str, dict[str, list[Resource]]] = {}
        self._by_coding: dict[str, dict[Coding, list[Resource]]] = {}
        self._times: dict[int, datetime | None] = {}
        self._texts: dict[tuple[str, tuple[str, ...] | None], frozenset[str]] = {}
        self._problems: dict[int, str | None] = {}

    # ---- by type ----------------------------------------------------------------------------

    def of_type(self, resource_type: str) -> list[Resource]:
        return self.data.of_type(resource_type)

    # ---- by code ----------------------------------------------------------------------------

    def coded_in(self, concept: Any) -> frozenset[str]:
        """The value sets a CodeableConcept's codings belong to (codes only, no names),
        computed once per concept and request."""
        key = id(concept)
        found = self._coded.get(key)
        if found is None:
            found = self._coded[key] = self._lookup(concept)
        return found

    def _lookup(self, concept: Any) -> frozenset[str]:
        # Charts repeat the same few hundred codings thousands of times: the answer is kept
        # per distinct list of (system, code), read straight off the JSON.
        key = _coding_key(concept)
        if key is None:
            return self._compute(concept)
        found = self._by_codings.get(key)
        if found is None:
            found = self._by_codings[key] = self._compute(concept)
        return found

    def _compute(self, concept: Any) -> frozenset[str]:
        pairs = [(s, c) for s, c, _d in codings(concept) if s and c]
        if not pairs:
            return _NONE
        if self._codes is not None:
            return frozenset().union(*(self._codes.coding_matches(s, c) for s, c in pairs))
        return frozenset(
            vs_id
            for vs_id, vs in self._valuesets.items()
            if any(vs.matches_coding(s, c) for s, c in pairs)
        )

    def text_matches(self, text: str, candidates: tuple[str, ...] | None) -> set[str]:
        """The value sets whose names a concept's text mentions (``ValueSetIndex``), once per
        distinct text and request: a chart repeats the same diagnosis texts many times."""
        key = (text, candidates)
        found = self._texts.get(key)
        if found is None:
            matched = self._codes.text_matches(text, candidates) if self._codes else set()
            found = self._texts[key] = frozenset(matched)
        return set(found)  # the caller adds to it

    def with_code(self, resource_type: str, vs_id: str) -> list[Resource]:
        """Resources of a type whose ``code`` is coded in a value set (document order)."""
        filed = self._by_valueset.get(resource_type)
        if filed is None:
            filed = self._by_valueset[resource_type] = self._file_by_valueset(resource_type)
        return filed.get(vs_id, [])

    def with_coding(self, resource_type: str, system: str, code: str) -> list[Resource]:
        """Resources of a type with this exact (system, code) in their ``code``."""
        filed = self._by_coding.get(resource_type)
        if filed is None:
            filed = self._by_coding[resource_type] = self._file_by_coding(resource_type)
        return filed.get((system, code), [])

    def _file_by_valueset(self, resource_type: str) -> dict[str, list[Resource]]:
        """The one pass over a resource type, the first time any builder asks about it."""
        filed: dict[str, list[Resource]] = {}
        for resource in self.of_type(resource_type):
            for vs_id in self.coded_in(resource.get("code")):
                filed.setdefault(vs_id, []).append(resource)
        return filed

    def _file_by_coding(self, resource_type: str) -> dict[Coding, list[Resource]]:
        """Filed by exact coding only when a builder first asks that way."""
        filed: dict[Coding, list[Resource]] = {}
        for resource in self.of_type(resource_type):
            for system, code, _display in codings(resource.get("code")):
                if system and code:
                    filed.setdefault((system, code), []).append(resource)
        return filed

    # ---- times ------------------------------------------------------------------------------

    def observed_at(self, observation: Resource) -> datetime | None:
        """When an Observation holds (``observation_time``), parsed once per resource."""
        key = id(observation)
        if key not in self._times:
            self._times[key] = observation_time(observation, self.tz)
        return self._times[key]

    def newest_first(
        self, resources: Iterable[Resource], when: Callable[[Resource], datetime | None]
    ) -> list[tuple[datetime, Resource]]:
        """(time, resource) of the resources that have a time, newest first (ties: by
        reference, so the order never depends on the order the EHR sent them in)."""
        timed = [(at, r) for r in resources if (at := when(r)) is not None]
        timed.sort(key=lambda pair: (pair[0], ref(pair[1])), reverse=True)
        return timed

    # ---- validation -------------------------------------------------------------------------

    def validated(self, resource: Resource) -> bool:
        """Whether this request has validated the resource already."""
        return id(resource) in self._problems

    def problem(self, resource: Resource) -> str | None:
        """Why a resource is not valid FHIR R4 (fhir.resources R4B), or None: validated once
        per resource and request, and only when a builder is about to read it."""
        key = id(resource)
        if key not in self._problems:
            self._problems[key] = validate_r4b(resource)
        return self._problems[key]
