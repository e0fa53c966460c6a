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


def build_gaps(ctx: FactContext) -> list[Fact]:
    facts: list[Fact] = []
    for key, outcome in sorted(ctx.data.outcomes.items()):
        if outcome in (KeyOutcome.failed, KeyOutcome.missing):
            facts.append(
                {
                    "t": "data_gap",
                    "key": key,
                    "reason": outcome.value,
                    "checks": CHECKS_BY_KEY.get(key, f"checks that read {key}"),
                }
            )
    for resource_ref, problem in ctx.invalid:
        facts.append(
            {
                "t": "data_gap",
                "key": resource_ref,
                "reason": "not valid FHIR R4",
                "checks": f"checks that read {resource_ref.split('/')[0]} ({problem})",
            }
        )
    return facts
