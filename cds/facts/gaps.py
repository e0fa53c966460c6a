"""``data_gap`` facts: data some checks need could not be had. Safety fails visible."""

from __future__ import annotations

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

# The same data in a clinician's words, for the card.
WORDS_BY_KEY = {
    "patient": "demographics",
    "conditions": "diagnoses",
    "allergies": "allergies",
    "medicationRequests": "medication orders",
    "medicationStatements": "reported medications",
    "medicationAdministrations": "medication administrations",
    "observations": "vital signs, measurements and results",
    "procedures": "procedures",
    "consents": "consents",
    "appointments": "appointments",
    "encounters": "visits",
    "encounter": "this encounter",
}
REASON_WORDS = {"failed": "the EHR could not send them", "missing": "not sent by the EHR"}


def build_gaps(ctx: FactContext) -> list[Fact]:
    facts: list[Fact] = []
    for key, outcome in sorted(ctx.data.outcomes.items()):
        if outcome in (KeyOutcome.failed, KeyOutcome.missing):
            facts.append(
                {
                    "t": "data_gap",
                    "key": key,
                    "reason": outcome.value,
                    "what": f"{WORDS_BY_KEY.get(key, key)} ({REASON_WORDS[outcome.value]})",
                    "checks": CHECKS_BY_KEY.get(key, f"checks that read {key}"),
                }
            )
    for resource_ref, problem in ctx.invalid:
        facts.append(
            {
                "t": "data_gap",
                "key": resource_ref,
                "reason": "not valid FHIR R4",
                "what": f"a {resource_ref.split('/')[0]} record (not valid FHIR R4, set aside)",
                "checks": f"checks that read {resource_ref.split('/')[0]} ({problem})",
            }
        )
    return facts
