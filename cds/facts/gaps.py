"""``data_gap`` facts: data some checks need could not be had. Safety fails visible.

Each fact keeps ``key`` and ``reason`` for the audit trail and says ``what`` happened in words a
clinician reads on the data card: no prefetch key names, FHIR ids, URLs or validator codes.
"""

from __future__ import annotations

import re
from typing import Any

from cds.facts.context import FactContext
from cds.pipeline_types import KeyOutcome

Fact = dict[str, Any]

# What cannot be checked without each prefetch key (the service registry's key names).
CHECKS_BY_KEY = {
    "conditions": "diagnosis-based contraindications (psychosis, cardiovascular, pregnancy, SUD…)",
    "allergies": "ketamine/esketamine allergy",
    "medicationRequests": "drug interactions, mood stabilizer, prior KAP orders",
    "medicationStatements": "drug interactions, at-home KAP doses",
    "medicationAdministrations": "session intervals, driving clearance, monitoring",
    "observations": "blood pressure, weight/dose, pregnancy status, fasting, escort, scores",
    "procedures": "pregnancy end, hysterectomy, prior KAP procedures",
    "consents": "informed consent",
    "appointments": "preparation and integration sessions",
    "encounters": "dosing encounter and visit history",
    "encounter": "the dosing encounter",
}

# The record each prefetch key holds, as the chart calls it.
RECORD_BY_KEY = {
    "conditions": "Diagnoses (problem list)",
    "allergies": "Allergies",
    "medicationRequests": "Medication orders",
    "medicationStatements": "Medications the patient reports taking",
    "medicationAdministrations": "Medication administrations (earlier doses)",
    "observations": "Observations (vital signs, labs, scores)",
    "procedures": "Procedures",
    "consents": "Consents",
    "appointments": "Appointments",
    "encounters": "Visits (encounters)",
    "encounter": "The current visit (encounter)",
}

RECORD_BY_TYPE = {
    "AllergyIntolerance": "an allergy record",
    "Appointment": "an appointment",
    "Condition": "a diagnosis",
    "Consent": "a consent record",
    "Encounter": "a visit (encounter)",
    "MedicationAdministration": "a medication administration",
    "MedicationRequest": "a medication order",
    "MedicationStatement": "a medication the patient reports",
    "Observation": "an observation (vital sign, lab or score)",
    "Patient": "the patient's demographics",
    "Procedure": "a procedure",
}

# Validator error kinds (pydantic's and fhir.resources' ``type``) in plain words; the first
# kind found in the code wins.
_PROBLEM_WORDS = (
    ("list_type", "should be a list of entries, not a single one"),
    ("missing", "is required but missing"),
    ("extra_forbidden", "is not an element FHIR R4 has there"),
    ("model_validation_format", "is not in the shape FHIR R4 requires"),
    ("json_invalid", "is not in the shape FHIR R4 requires"),
    ("dict_type", "is not in the shape FHIR R4 requires"),
    ("model_type", "is not in the shape FHIR R4 requires"),
    ("string", "should be text"),
    ("int", "should be a whole number"),
    ("float", "should be a number"),
    ("decimal", "should be a number"),
    ("bool", "should be true or false"),
    ("date", "is not a valid date or time"),
    ("literal", "holds a code FHIR R4 does not allow there"),
    ("enum", "holds a code FHIR R4 does not allow there"),
)
# Validator-internal steps of a location path, not FHIR elements.
_NOT_ELEMENTS = {"root", "__root__"}


def build_gaps(ctx: FactContext) -> list[Fact]:
    facts: list[Fact] = []
    for key, outcome in sorted(ctx.data.outcomes.items()):
        if outcome in (KeyOutcome.failed, KeyOutcome.missing):
            facts.append(_key_gap(key, outcome, ctx.data.reasons.get(key)))
    for resource_ref, problem in ctx.invalid:
        resource_type = resource_ref.split("/")[0]
        facts.append(
            {
                "t": "data_gap",
                "key": resource_ref,
                "reason": "not valid FHIR R4",
                "checks": f"the checks that read {_record(resource_type)}",
                "what": _capitalized(invalid_resource_words(resource_type, problem)),
            }
        )
    return facts


def _key_gap(key: str, outcome: KeyOutcome, plain: str | None) -> Fact:
    record = RECORD_BY_KEY.get(key, f"Records of kind {key}")
    why = plain or (
        "the EHR reported that it could not retrieve them"
        if outcome is KeyOutcome.failed
        else "not sent by the EHR, and there was no way to read them"
    )
    return {
        "t": "data_gap",
        "key": key,
        "reason": outcome.value,
        "checks": CHECKS_BY_KEY.get(key, f"checks that read {key}"),
        "what": f"{record}: {why}",
    }


def invalid_resource_words(resource_type: str, problem: str) -> str:
    """``"category: list_type"`` from the validator as "a medication order: its category should
    be a list of entries, not a single one"."""
    record = _record(resource_type)
    location, _, kind = problem.rpartition(": ")
    if not location:
        return f"{record} could not be read as FHIR R4"
    parts = location.split(".")
    element = ".".join(p for p in parts if not p.isdigit() and p not in _NOT_ELEMENTS)
    return f"{record}: its {_spaced(element)} element {_problem_words(kind)}"


def _record(resource_type: str) -> str:
    return RECORD_BY_TYPE.get(resource_type, f"a {_spaced(resource_type).lower()} record")


def _problem_words(kind: str) -> str:
    for code, words in _PROBLEM_WORDS:
        if code in kind:
            return words
    return "has a value FHIR R4 does not allow there"


def _spaced(name: str) -> str:
    """``valueQuantity`` as "value quantity", ``dosageInstruction.route`` as "dosage
    instruction route": the element, without FHIR's camel case."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.replace(".", " "))
    return words.lower()


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]
