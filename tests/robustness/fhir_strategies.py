"""Hypothesis strategies: valid KAP requests, and FHIR data mutated into every shape an EHR (or
an attacker) might send: missing fields, wrong types, unknown codes, extreme dates and values,
unicode, huge strings, deep nesting."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st
from robust_support import EXAMPLES, load_json

from cds.ruleset.cases import CASE_TIME, Case, build_request

Json = dict[str, Any]
Path_ = tuple[str | int, ...]

KAP_DOSING = {"coding": [{"system": "urn:kap-cds:appointment-type", "code": "kap-dosing"}]}
DOSING_APPOINTMENT: Json = {
    "resourceType": "Appointment",
    "id": "appt-dosing",
    "status": "proposed",
    "serviceType": [KAP_DOSING],
    "start": CASE_TIME,
    "participant": [{"actor": {"reference": "Patient/pat-eligible"}, "status": "accepted"}],
}


def base_requests() -> dict[str, Json]:
    """Valid KAP requests, one per service (and the README's example), keyed by a name."""
    cases = {
        "order-sign-eligible": Case(description="b"),
        "order-select-esketamine": Case(
            description="b", service="kap-order-select", order="esketamine-56"
        ),
        "appointment-book": Case(
            description="b",
            service="kap-appointment-book",
            order=None,
            appointment=DOSING_APPOINTMENT,
        ),
        "encounter-start": Case(
            description="b",
            service="kap-encounter-start",
            patient="dosing-day-ketamine",
            order=None,
            encounter_id="enc-dosing",
        ),
        "encounter-discharge": Case(
            description="b",
            service="kap-encounter-discharge",
            patient="dosing-day-esketamine",
            order=None,
            encounter_id="enc-dosing",
        ),
        "patient-view": Case(
            description="b", service="kap-patient-view", patient="dosing-day-ketamine", order=None
        ),
    }
    requests = {name: build_request(case, EXAMPLES, name) for name, case in cases.items()}
    requests["readme-order-sign"] = load_json(EXAMPLES / "requests" / "order-sign-ketamine-iv.json")
    return requests


BASES = base_requests()
SERVICE_OF_HOOK = {
    "order-sign": "kap-order-sign",
    "order-select": "kap-order-select",
    "appointment-book": "kap-appointment-book",
    "encounter-start": "kap-encounter-start",
    "encounter-discharge": "kap-encounter-discharge",
    "patient-view": "kap-patient-view",
}

# --- weird values ------------------------------------------------------------------------------

SAFE_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)  # no lone surrogates
EXTREME_DATES = st.sampled_from(
    [
        "0001-01-01",
        "9999-12-31T23:59:59Z",
        "2026-02-30",
        "2026-13-01",
        "1970-01-01T00:00:00",
        "2026-11-20T15:00:00+14:00",
        "2026-11-20T15:00:00-12:00",
        "2026",
        "2026-11",
        "2026-11-20T24:00:00Z",
        "-0001-01-01",
        "yesterday",
        "",
        "2026-11-20T15:00:00.123456789Z",
        "9" * 40,
        "2026-11-20T15:00:60Z",
    ]
)
EXTREME_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1e308, -1e308, 5e-324, 2**63, -(2**63), 1e-12]),
)
CODES = st.sampled_from(
    [
        ("http://snomed.info/sct", "77386006"),
        ("http://loinc.org", "82810-3"),
        ("http://www.nlm.nih.gov/research/umls/rxnorm", "6130"),
        ("http://loinc.org", "29463-7"),
        ("http://loinc.org", "8480-6"),
        ("urn:kap-cds:obs", "last-solid-intake"),
        ("urn:kap-cds:appointment-type", "kap-dosing"),
        ("http://snomed.info/sct", "no-such"),
        ("", ""),
        ("urn:x", "\u0000"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "F32.9"),
    ]
)


@st.composite
def codeable_concepts(draw: st.DrawFn) -> Any:
    system, code = draw(CODES)
    coding: Any = {"system": system, "code": code, "display": draw(SAFE_TEXT)}
    return draw(st.sampled_from([{"coding": [coding]}, {"coding": coding}, {"text": code}, coding]))


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = {"extension": [value]} if i % 2 else [value]
    return value


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    EXTREME_NUMBERS,
    SAFE_TEXT,
    EXTREME_DATES,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(SAFE_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)
WEIRD_VALUES = st.one_of(
    JSON_VALUES,
    EXTREME_DATES,
    EXTREME_NUMBERS,
    codeable_concepts(),
    st.sampled_from(["x" * 100_000, "\u202e\U0001f489\u00e9" * 2000, nested(40), nested(60)]),
    st.builds(
        lambda q, u: {"value": q, "unit": u, "code": u, "system": "http://unitsofmeasure.org"},
        EXTREME_NUMBERS,
        st.sampled_from(["mg", "kg", "[lb_av]", "mm[Hg]", "g", "", "??"]),
    ),
)

FHIR_FIELDS = [
    "status",
    "code",
    "category",
    "subject",
    "effectiveDateTime",
    "effectivePeriod",
    "issued",
    "valueQuantity",
    "valueCodeableConcept",
    "valueBoolean",
    "valueDateTime",
    "valueInteger",
    "valueString",
    "component",
    "interpretation",
    "clinicalStatus",
    "verificationStatus",
    "onsetDateTime",
    "abatementDateTime",
    "recordedDate",
    "medicationCodeableConcept",
    "medicationReference",
    "dosageInstruction",
    "dosage",
    "authoredOn",
    "intent",
    "start",
    "end",
    "period",
    "serviceType",
    "appointmentType",
    "type",
    "appointment",
    "supportingInformation",
    "gender",
    "birthDate",
    "extension",
    "performedDateTime",
    "effectiveDateTime",
    "scope",
    "provision",
    "dateTime",
    "id",
    "resourceType",
    "reaction",
    "criticality",
]
RESOURCE_TYPES = [
    "Patient",
    "Observation",
    "Condition",
    "MedicationRequest",
    "MedicationStatement",
    "MedicationAdministration",
    "AllergyIntolerance",
    "Procedure",
    "Consent",
    "Appointment",
    "Encounter",
    "Medication",
    "OperationOutcome",
    "Bundle",
    "NoSuchType",
]


@st.composite
def random_resources(draw: st.DrawFn) -> Json:
    """A resource of a (mostly) known type with a handful of known fields set to weird values."""
    resource: Json = {
        "resourceType": draw(st.sampled_from(RESOURCE_TYPES)),
        "id": draw(st.one_of(st.from_regex(r"[a-z0-9\-]{1,20}", fullmatch=True), JSON_SCALARS)),
    }
    for name in draw(st.lists(st.sampled_from(FHIR_FIELDS), max_size=6)):
        resource[name] = draw(WEIRD_VALUES)
    return resource


# --- mutating a request ------------------------------------------------------------------------


def paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path to a node inside ``value`` (dict keys and list indexes)."""
    found: list[Path_] = []
    if isinstance(value, dict):
        items: list[tuple[str | int, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return found
    for key, child in items:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


def _parent(root: Any, path: Path_) -> Any:
    node = root
    for key in path[:-1]:
        node = node[key]
    return node


def data_paths(request: Json) -> list[Path_]:
    """Paths into FHIR data only (prefetch and context resources), not the envelope: mutating
    ``hook`` or ``context.patientId`` just tests the 400 path over and over."""
    found = [("prefetch", *p) for p in paths(request.get("prefetch") or {}, ())]
    for key in ("draftOrders", "appointments"):
        if key in request["context"]:
            found += [("context", key, *p) for p in paths(request["context"][key], ())]
    return found


@st.composite
def mutated_requests(draw: st.DrawFn, max_mutations: int = 4) -> tuple[str, Json]:
    """A valid base request with 1..max_mutations changes to its FHIR data."""
    name = draw(st.sampled_from(sorted(BASES)))
    request = copy.deepcopy(BASES[name])
    for _ in range(draw(st.integers(1, max_mutations))):
        _mutate_once(draw, request)
    return SERVICE_OF_HOOK[request["hook"]], request


def fresh(value: Any) -> Any:
    """A private copy of a drawn value: strategies may hand out the same object twice, and a
    later mutation must not change what the strategy generates (hypothesis checks for that)."""
    return copy.deepcopy(value)


def _mutate_once(draw: st.DrawFn, request: Json) -> None:
    candidates = data_paths(request)
    kind = draw(st.sampled_from(["replace", "delete", "add-field", "add-resource", "wrap"]))
    if kind == "add-resource" or not candidates:
        _add_resource(draw, request)
        return
    path = draw(st.sampled_from(candidates))
    parent, key = _parent(request, path), path[-1]
    if kind == "delete":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(int(key))
    elif kind == "replace":
        parent[key] = fresh(draw(WEIRD_VALUES))
    elif kind == "wrap":
        parent[key] = draw(st.sampled_from([[parent[key]], {"value": parent[key]}]))
    elif isinstance(parent[key], dict):
        parent[key][draw(st.sampled_from(FHIR_FIELDS))] = fresh(draw(WEIRD_VALUES))


def _add_resource(draw: st.DrawFn, request: Json) -> None:
    prefetch = request.setdefault("prefetch", {})
    bundles = [k for k, v in prefetch.items() if isinstance(v, dict) and "entry" in v]
    resource = fresh(draw(random_resources()))
    if bundles:
        prefetch[draw(st.sampled_from(bundles))]["entry"].append({"resource": resource})
    else:
        prefetch["extra"] = resource
