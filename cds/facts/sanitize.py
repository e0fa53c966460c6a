"""When raw FHIR JSON is malformed: set invalid resources aside instead of failing.

Fact builders read raw JSON for speed and validate (fhir.resources.R4B) only what they use. A
resource with a wrong-typed field (a list where FHIR has an object, a number for a date) can
still trip a builder before validation. Then the evaluation is repeated on the data with every
resource that is not valid FHIR R4 set aside; those resources are named on the data card
(KAP-DATA-001), so the checks that needed them are visibly missing, never silently passed.
"""

from __future__ import annotations

from typing import Any

from cds.errors import RequestInvalid
from cds.facts.fhir import ref, validate_r4b
from cds.facts.triage import bundle_resources
from cds.pipeline_types import PatientData

# What a builder raises when JSON does not have the shape FHIR R4 promises.
MALFORMED_DATA = (TypeError, AttributeError, ValueError, KeyError, IndexError)
CONTEXT_BUNDLES = ("draftOrders", "appointments")


def check_context_resources(context: dict[str, Any]) -> None:
    """The hook's own resources (the draft orders, the appointment being booked) must be valid
    FHIR R4: a malformed order is the EHR's error to fix, answered with HTTP 400."""
    for key in CONTEXT_BUNDLES:
        for index, resource in enumerate(bundle_resources(context.get(key))):
            problem = validate_r4b(resource)
            if problem is not None:
                raise RequestInvalid(
                    f"context.{key}.entry[{index}].resource is not valid FHIR R4 ({problem})"
                )


def without_invalid(data: PatientData) -> tuple[PatientData, list[tuple[str, str]]]:
    """The data with every resource that is not valid FHIR R4 removed, and what was removed."""
    kept: dict[str, list[dict[str, Any]]] = {}
    removed: list[tuple[str, str]] = []
    for resource_type, resources in data.resources.items():
        for resource in resources:
            problem = validate_r4b(resource) if isinstance(resource, dict) else "not an object"
            if problem is None:
                kept.setdefault(resource_type, []).append(resource)
            else:
                removed.append(
                    (ref(resource) if isinstance(resource, dict) else resource_type, problem)
                )
    return PatientData(kept, dict(data.outcomes), dict(data.reasons)), removed
