"""Everything a fact builder may read: the request, the gathered data, T0, policy, value sets."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from cds.facts.fhir import Resource, codings, concept_text, ref
from cds.facts.index import PrefetchIndex
from cds.pipeline_types import PatientData
from cds.ruleset.policy import Policy
from cds.ruleset.valuesets import ValueSet, ValueSetIndex

T = TypeVar("T")

PHASE_BY_HOOK = {
    "order-select": "order",
    "order-sign": "order",
    "appointment-book": "book",
    "encounter-start": "session",
    "encounter-discharge": "discharge",
    "patient-view": "view",
}


@dataclass(frozen=True)
class Plan:
    """The KAP dose a request is about: ordered, booked, being given, just given, or (chart
    open) the patient's current KAP treatment."""

    drug: str | None  # ketamine / esketamine; None when nothing says which
    route: str
    t0: datetime
    order: Resource | None = None  # the KAP MedicationRequest (draft or active)
    appointment: Resource | None = None
    encounter: Resource | None = None
    at_home: bool = False
    home_evidence: str | None = None  # what says the dose is taken at home (clinician words)
    standing: bool = False  # a course order signed without a planned first dose
    # encounter-start: readings up to this time (the encounter's first dose, else the request's
    # arrival) are pre-dose, even when charted minutes after the encounter opened (T0)
    pre_dose_until: datetime | None = None
    timed: bool = True  # False: the request named no dose time, T0 is the arrival time


@dataclass
class FactContext:
    hook: str
    context: dict[str, Any]
    data: PatientData
    t0: datetime
    tz: ZoneInfo
    policy: Policy
    valuesets: dict[str, ValueSet]
    plan: Plan | None = None
    index: ValueSetIndex | None = None  # built once per rule set by the evaluator
    # The one pass over this request's data; the evaluator shares one between the contexts
    # of a request. Built on first use when not given.
    prefetch: PrefetchIndex | None = None
    now: datetime | None = None  # when the request arrived (T0 is the planned dose time)
    planned_time: bool = True  # T0 is a planned dose time, not the arrival time
    # Resources the rules needed but that were not valid FHIR R4: reported on a data card.
    invalid: list[tuple[str, str]] = field(default_factory=list)
    # Fact types no rule of this hook negates ("none:"): a fact of such a type can only make a
    # rule fire, never stop one, so its resource is validated once a rule has matched it.
    deferrable: frozenset[str] = frozenset()
    # Resources behind facts built before validation (``valid_once_matched``), by reference
    # (several when they share one: resources without an id).
    pending: dict[str, list[Resource]] = field(default_factory=dict)
    # A pending resource turned out invalid: its facts are in this evaluation's facts.
    rejected_late: bool = False
    _reported: set[int] = field(default_factory=set)
    _memo: dict[str, Any] = field(default_factory=dict)

    @property
    def data_index(self) -> PrefetchIndex:
        if self.prefetch is None or self.prefetch.data is not self.data:
            self.prefetch = PrefetchIndex(self.data, self.tz, self.valuesets, self.index)
        return self.prefetch

    @property
    def phase(self) -> str:
        return PHASE_BY_HOOK[self.hook]

    @property
    def patient_id(self) -> str:
        return str(self.context.get("patientId", ""))

    def resources(self, resource_type: str) -> list[Resource]:
        return self.data_index.of_type(resource_type)

    def valid(self, resource: Resource) -> bool:
        """Validate a resource the rules are about to read (fhir.resources R4B, once per
        resource and request); an invalid one goes on the data card."""
        problem = self.data_index.problem(resource)
        if problem is not None and id(resource) not in self._reported:
            self._reported.add(id(resource))
            self.invalid.append((ref(resource), problem))
        return problem is None

    def valid_once_matched(self, resource: Resource, fact_type: str) -> bool:
        """``valid``, or for a deferrable fact type not yet: the resource is kept in
        ``pending`` and validated only if a rule matches a fact built from it (the evaluator
        then evaluates again without it if it is not valid). A large chart repeats the same
        diagnoses hundreds of times; most never match a rule and cost no validation."""
        if fact_type not in self.deferrable or self.data_index.validated(resource):
            return self.valid(resource)
        self.pending.setdefault(ref(resource), []).append(resource)
        return True

    def confirm(self, resource_ref: str) -> bool:
        """Validate the pending resources of a reference now (a rule matched a fact built from
        one of them): whether all are valid. Facts do not say which of several resources
        sharing a reference they came from, so all are validated."""
        results = [self.valid(r) for r in self.pending.pop(resource_ref, ())]
        if all(results):
            return True
        self.rejected_late = True
        return False

    def first_valid(self, items: Iterable[T], resource_of: Callable[[T], Resource]) -> Iterator[T]:
        """The items whose resource is valid, validated lazily in the caller's order: a caller
        that stops at the newest usable one validates only what decided."""
        for item in items:
            if self.valid(resource_of(item)):
                yield item

    def observed_at(self, observation: Resource) -> datetime | None:
        """When an Observation holds (catalog 3.2), parsed once per resource and request."""
        return self.data_index.observed_at(observation)

    def matching_valuesets(
        self, concept: Any, prefix: str = "VS-", candidates: tuple[str, ...] | None = None
    ) -> Iterator[str]:
        """Ids of the value sets a CodeableConcept belongs to (codes first, then names)."""
        coded = list(codings(concept))
        text = " ".join(filter(None, [concept_text(concept), *(c[2] or "" for c in coded)]))
        if self.index is not None:
            found = self.data_index.text_matches(text, candidates)
            for system, code, _display in coded:
                found |= self.index.coding_matches(system, code)
            wanted = set(candidates) if candidates is not None else None
            yield from sorted(
                v for v in found if v.startswith(prefix) and (wanted is None or v in wanted)
            )
            return
        for vs_id in candidates or tuple(self.valuesets):
            if not vs_id.startswith(prefix):
                continue
            vs = self.valuesets[vs_id]
            if any(vs.matches_coding(s, c) for s, c, _d in coded) or vs.matches_text(text):
                yield vs_id

    def coded_in(self, concept: Any) -> frozenset[str]:
        """The value sets a CodeableConcept's codings belong to (no name matching), computed
        once per concept and request."""
        return self.data_index.coded_in(concept)

    def with_code(self, resource_type: str, vs_id: str) -> list[Resource]:
        """Resources of a type whose ``code`` is coded in a value set: one pass over the type
        per request serves every builder, instead of each builder rescanning everything."""
        return self.data_index.with_code(resource_type, vs_id)

    def in_code_valueset(self, resource_type: str, vs_id: str) -> list[Resource]:
        """Resources of a type whose ``code`` is in a value set, as ``in_valueset`` decides
        (codes, and names for value sets that have them), in the order they were sent. Coded
        matches come from the index; only a value set with names needs a scan."""
        if self.valuesets[vs_id].name_pattern is None:
            return self.with_code(resource_type, vs_id)
        return [r for r in self.resources(resource_type) if self.in_valueset(r.get("code"), vs_id)]

    def with_coding(self, resource_type: str, system: str, code: str) -> list[Resource]:
        """Resources of a type with this exact (system, code) in their ``code``."""
        return self.data_index.with_coding(resource_type, system, code)

    def cached(self, key: str, compute: Callable[[], T]) -> T:
        """Work several builders need (conditions, doses, weights), done once per evaluation."""
        if key not in self._memo:
            self._memo[key] = compute()
        value: T = self._memo[key]
        return value

    def in_valueset(self, concept: Any, vs_id: str) -> bool:
        """Whether a CodeableConcept belongs to one value set: codes first, then (medication
        value sets only) ingredient names."""
        if vs_id in self.coded_in(concept):
            return True
        vs = self.valuesets[vs_id]
        if vs.name_pattern is None:
            return False
        coded = list(codings(concept))
        return vs.matches_text(
            " ".join(filter(None, [concept_text(concept), *(c[2] or "" for c in coded)]))
        )
