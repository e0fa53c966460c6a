"""Every suggestion action builds valid FHIR R4 resources (checked with the R4B models)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cds.cards.actions import ACTIONS, ActionContext
from cds.facts.fhir import validate_r4b

CTX = ActionContext(
    patient_id="p1",
    t0=datetime(2026, 11, 20, 15, tzinfo=UTC),
    order_ref="MedicationRequest/ket-iv",
    encounter_id="enc-1",
    text="No driving or machinery until 2026-11-21 15:40.",
)


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_action_resources_are_valid_r4(name: str) -> None:
    actions = ACTIONS[name](CTX, {})
    assert actions, f"{name} built nothing"
    for action in actions:
        if action.type == "delete":
            assert action.resourceId == "MedicationRequest/ket-iv"
            continue
        assert action.resource is not None
        assert validate_r4b(action.resource) is None, action.resource
        assert action.resource.get("subject", action.resource.get("participant"))


def test_cancel_needs_a_draft_order() -> None:
    no_order = ActionContext(patient_id="p1", t0=CTX.t0)
    assert ACTIONS["cancel-draft-order"](no_order, {}) is None
