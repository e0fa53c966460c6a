"""The data card's lines are in a clinician's words: no validator codes, keys or record ids."""

from __future__ import annotations

import pytest

from cds.facts.gaps import invalid_resource_words


@pytest.mark.parametrize(
    ("resource_type", "problem", "words"),
    [
        (
            "MedicationRequest",
            "category: list_type",
            "a medication order: its category element should be a list of entries, "
            "not a single one",
        ),
        (
            "Observation",
            "code.root: model_validation_format",
            "an observation (vital sign, lab or score): its code element is not in the shape "
            "FHIR R4 requires",
        ),
        (
            "Observation",
            "component.0.valueQuantity.value: value_error",
            "an observation (vital sign, lab or score): its component value quantity value "
            "element has a value FHIR R4 does not allow there",
        ),
        (
            "Observation",
            "status: model_field_validation.missing",
            "an observation (vital sign, lab or score): its status element is required but missing",
        ),
        (
            "DeviceRequest",
            "resourceType missing",
            "a device request record could not be read as FHIR R4",
        ),
    ],
)
def test_validator_problems_in_plain_words(resource_type: str, problem: str, words: str) -> None:
    assert invalid_resource_words(resource_type, problem) == words
