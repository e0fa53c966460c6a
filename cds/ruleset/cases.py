"""Rule fixtures ("cases"): a patient, an order or visit, a time, and the cards expected.

A case file (``fhir_examples/cases/<rule id>/<name>.json``) is small: it names a base patient
bundle under ``fhir_examples/patients/``, adds or removes FHIR R4 resources, and says which rules
must fire (at which indicator) and which must not. ``build_request`` turns it into a complete
CDS Hooks request with prefetch — the same JSON an EHR would send — so `kap-cds rules test` and
the HTTP tests exercise the real pipeline, data gathering included.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cds.hooks.cards import fired_by_rule, fired_variants
from cds.hooks.registry import SERVICES_BY_ID

CASE_TIME = "2026-11-20T15:00:00+00:00"  # default planned dose time of every case
PREFETCH_KEY_BY_TYPE = {
    "Condition": "conditions",
    "AllergyIntolerance": "allergies",
    "MedicationRequest": "medicationRequests",
    "MedicationStatement": "medicationStatements",
    "MedicationAdministration": "medicationAdministrations",
    "Observation": "observations",
    "Procedure": "procedures",
    "Consent": "consents",
    "Appointment": "appointments",
    "Encounter": "encounters",
}
Json = dict[str, Any]


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    service: str = "kap-order-sign"
    patient: str | None = "eligible-adult"
    now: str = CASE_TIME
    # The facility's IANA zone for the case (KAP_CDS_FACILITY_TIMEZONE); default UTC.
    timezone: str | None = None
    order: str | Json | None = "ketamine-iv"  # fhir_examples/orders/<name>.json or a resource
    appointment: Json | None = None  # appointment-book: the Appointment being booked
    encounter_id: str | None = None  # encounter hooks: id of an Encounter in the data
    resources: list[Json] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list, description="'Type/id' to drop from the base")
    prefetch_outcomes: dict[str, Literal["failed", "missing", "null"]] = Field(default_factory=dict)
    expect: dict[str, Literal["info", "warning", "critical"]] = Field(default_factory=dict)
    absent: list[str] = Field(default_factory=list)
    # rule id -> the variant expected to fire: tells two variants of the same severity apart
    # (on the readiness checklist every gap is critical when the dose is near).
    variants: dict[str, str] = Field(default_factory=dict)
    max_indicator: Literal["info", "warning", "critical"] | None = None
    no_cards: bool = False


@dataclass(frozen=True)
class LoadedCase:
    path: Path
    rule_id: str
    name: str
    case: Case


def load_cases(examples_dir: Path) -> list[LoadedCase]:
    cases = []
    for path in sorted((examples_dir / "cases").glob("*/*.json")):
        case = Case.model_validate_json(path.read_text(encoding="utf-8"))
        cases.append(LoadedCase(path, path.parent.name, path.stem, case))
    return cases


def _load_json(path: Path) -> Json:
    data: Json = json.loads(path.read_text(encoding="utf-8"))
    return data


def _patient_resources(case: Case, examples_dir: Path) -> list[Json]:
    base: list[Json] = []
    if case.patient:
        bundle = _load_json(examples_dir / "patients" / f"{case.patient}.json")
        base = [copy.deepcopy(e["resource"]) for e in bundle.get("entry", [])]
    dropped = set(case.remove)
    added = {f"{r['resourceType']}/{r.get('id')}" for r in case.resources}
    kept = [r for r in base if f"{r['resourceType']}/{r.get('id')}" not in dropped | added]
    return kept + copy.deepcopy(case.resources)


def _order(case: Case, examples_dir: Path) -> Json | None:
    if case.order is None:
        return None
    if isinstance(case.order, str):
        return _load_json(examples_dir / "orders" / f"{case.order}.json")
    return copy.deepcopy(case.order)


def _searchset(resources: list[Json]) -> Json:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def build_request(case: Case, examples_dir: Path, hook_instance: str = "case") -> Json:
    service = SERVICES_BY_ID[case.service]
    resources = _patient_resources(case, examples_dir)
    patient = next((r for r in resources if r["resourceType"] == "Patient"), None)
    patient_id = str(patient["id"]) if patient else "unknown"
    context = _context(case, service.hook, patient_id, examples_dir)
    prefetch: dict[str, Json | None] = {"patient": patient}
    for key in service.templates:
        if key == "encounter":
            found = [
                r
                for r in resources
                if r["resourceType"] == "Encounter" and r.get("id") == case.encounter_id
            ]
            prefetch[key] = found[0] if found else None
        elif key != "patient":
            prefetch[key] = _searchset(
                [r for r in resources if PREFETCH_KEY_BY_TYPE.get(r["resourceType"]) == key]
            )
    for key, outcome in case.prefetch_outcomes.items():
        if outcome == "missing":
            prefetch.pop(key, None)
        elif outcome == "null":
            prefetch[key] = None
        else:
            prefetch[key] = _operation_outcome()
    return {
        "hook": service.hook,
        "hookInstance": hook_instance,
        "context": context,
        "prefetch": prefetch,
    }


def _context(case: Case, hook: str, patient_id: str, examples_dir: Path) -> Json:
    context: Json = {"userId": "Practitioner/example", "patientId": patient_id}
    if hook in ("order-select", "order-sign"):
        order = _order(case, examples_dir)
        entries = [{"resource": order}] if order else []
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": entries}
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{order['id']}"] if order else []
    elif hook == "appointment-book":
        entries = [{"resource": case.appointment}] if case.appointment else []
        context["appointments"] = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    elif hook in ("encounter-start", "encounter-discharge"):
        context["encounterId"] = case.encounter_id or "unknown"
    return context


def _operation_outcome() -> Json:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "exception", "diagnostics": "simulated prefetch failure"}
        ],
    }


def case_now(case: Case) -> datetime:
    return datetime.fromisoformat(case.now)


def check_result(
    case: Case, fired: dict[str, str], variants: dict[str, str] | None = None
) -> list[str]:
    """Problems with a result (``fired`` maps rule id -> indicator, ``variants`` rule id ->
    variant); empty when it passes."""
    problems = []
    for rule_id, variant in case.variants.items():
        got = (variants or {}).get(rule_id)
        if got != variant:
            problems.append(f"{rule_id} fired variant {got}, expected {variant}")
    for rule_id, indicator in case.expect.items():
        if rule_id not in fired:
            problems.append(f"{rule_id} did not fire (expected {indicator})")
        elif fired[rule_id] != indicator:
            problems.append(f"{rule_id} fired {fired[rule_id]}, expected {indicator}")
    problems += [
        f"{rule_id} fired ({fired[rule_id]}) but must not"
        for rule_id in case.absent
        if rule_id in fired
    ]
    if case.no_cards and fired:
        problems.append(f"expected no cards, got {sorted(fired)}")
    if case.max_indicator:
        rank = {"info": 0, "warning": 1, "critical": 2}
        over = {r: i for r, i in fired.items() if rank[i] > rank[case.max_indicator]}
        if over:
            problems.append(f"cards above {case.max_indicator}: {over}")
    return problems


@dataclass(frozen=True)
class CaseOutcome:
    case: LoadedCase
    fired: dict[str, str]
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems


def run_case(
    loaded: LoadedCase,
    evaluator: Any,
    settings: Any,
    examples_dir: Path,
    narrow: Mapping[str, str] | None = None,
) -> CaseOutcome:
    """Run one case through data gathering and the evaluator, in process (no HTTP).
    ``narrow``: send the prefetch an EHR executing these narrow templates would send."""
    from cds.fhir.gather import gather_sync
    from cds.fhir.narrow import narrow_prefetch
    from cds.hooks.models import parse_call

    raw = build_request(loaded.case, examples_dir)
    if narrow:
        raw["prefetch"] = narrow_prefetch(raw["prefetch"], narrow)
    # parse_call, as the HTTP route does: it also repairs the hook resources' harmless deviations.
    call = parse_call(raw, SERVICES_BY_ID[loaded.case.service].hook)
    request = call.request
    data = gather_sync(request, settings)
    if loaded.case.timezone:
        evaluator = evaluator.with_timezone(loaded.case.timezone)
    evaluation = evaluator.evaluate(
        service_id=loaded.case.service,
        context=dict(call.context),
        data=data,
        now=case_now(loaded.case),
    )
    cards = [card.model_dump(mode="json") for card in evaluation.cards]
    fired = fired_by_rule(cards)
    problems = check_result(loaded.case, fired, fired_variants(cards))
    return CaseOutcome(loaded, fired, problems)
