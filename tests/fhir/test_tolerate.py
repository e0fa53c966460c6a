"""Harmless FHIR shape deviations are repaired in place; anything ambiguous is left as sent."""

from __future__ import annotations

import copy
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation

from cds.fhir.tolerate import tolerate, tolerate_all

CODING = {"system": "http://loinc.org", "code": "85354-9"}
CATEGORY = {"coding": [{"code": "outpatient"}]}


def sandbox_order() -> dict[str, Any]:
    """The CDS Hooks sandbox's draft order: category is one object, not a list."""
    return {
        "resourceType": "MedicationRequest",
        "id": "request-123",
        "status": "draft",
        "intent": "order",
        "category": copy.deepcopy(CATEGORY),
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "238083"}]
        },
        "subject": {"reference": "Patient/smart-1288992"},
        "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 1, "unit": "{pill}"}}]}],
    }


def test_one_object_where_r4_has_a_list_becomes_a_list() -> None:
    order = sandbox_order()
    assert tolerate(order) == ["MedicationRequest.category"]
    assert order["category"] == [CATEGORY]
    MedicationRequest.model_validate(order)


def test_nested_elements_are_repaired_too() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": CODING},  # coding as one object
        "component": {"code": [{"coding": [CODING]}], "valueQuantity": {"value": 186}},
    }
    repaired = tolerate(observation)
    assert sorted(repaired) == [
        "Observation.code.coding",
        "Observation.component",
        "Observation.component.code",
    ]
    assert observation["code"] == {"coding": [CODING]}
    assert observation["component"][0]["code"] == {"coding": [CODING]}
    Observation.model_validate(observation)


def test_well_formed_resources_are_untouched() -> None:
    order = sandbox_order()
    order["category"] = [CATEGORY]
    before = copy.deepcopy(order)
    assert tolerate(order) == []
    assert order == before


def test_ambiguous_deviations_are_left_as_sent() -> None:
    two_codes = [{"text": "a"}, {"text": "b"}]
    observation = {"resourceType": "Observation", "status": "final", "code": two_codes}
    assert tolerate(observation) == []
    assert observation["code"] == two_codes  # which one is meant? not guessed


def test_unknown_types_and_non_resources_are_ignored() -> None:
    assert tolerate({"resourceType": "NotAType", "category": {}}) == []
    assert tolerate({"resourceType": "../../etc", "category": {}}) == []
    assert tolerate({"category": {}}) == []
    assert tolerate_all([sandbox_order(), sandbox_order(), {"resourceType": "Patient"}]) == 2
