"""Named suggestion actions a rule file may offer (``suggestions: [{action: order-bp-check}]``).

Each builder returns CDS Hooks actions carrying valid FHIR R4 resources (checked with the R4B
models in tests/cards/test_actions.py), or ``None`` when the action does not apply (e.g. there is
no draft order to cancel). Unknown action names are refused when the rule set loads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds.hooks.cards import Action

LOINC = "http://loinc.org"
APPOINTMENT_TYPES = "urn:kap-cds:appointment-type"
KAP_OBS = "urn:kap-cds:obs"


@dataclass(frozen=True)
class ActionContext:
    patient_id: str
    t0: datetime
    order_ref: str | None = None  # "MedicationRequest/123" of the draft KAP order
    encounter_id: str | None = None
    text: str = ""  # the card summary, for instructions


Builder = Callable[[ActionContext, Mapping[str, str]], list[Action] | None]


def _subject(ctx: ActionContext) -> dict[str, str]:
    return {"reference": f"Patient/{ctx.patient_id}"}


def _service_request(ctx: ActionContext, code: str, display: str) -> list[Action]:
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": _subject(ctx),
        "occurrenceDateTime": ctx.t0.isoformat(),
    }
    if ctx.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{ctx.encounter_id}"}
    return [Action(type="create", description=f"Order: {display}", resource=resource)]


def cancel_draft_order(ctx: ActionContext, _params: Mapping[str, str]) -> list[Action] | None:
    if not ctx.order_ref:
        return None
    return [
        Action(
            type="delete",
            description="Remove the draft ketamine/esketamine order",
            resourceId=ctx.order_ref,
        )
    ]


def _proposed_visit(ctx: ActionContext, kind: str, display: str) -> list[Action]:
    resource = {
        "resourceType": "Appointment",
        "status": "proposed",
        "serviceType": [
            {"coding": [{"system": APPOINTMENT_TYPES, "code": kind, "display": display}]}
        ],
        "description": display,
        "participant": [{"actor": _subject(ctx), "status": "needs-action"}],
    }
    return [Action(type="create", description=f"Propose: {display}", resource=resource)]


def record_escort(ctx: ActionContext, _params: Mapping[str, str]) -> list[Action]:
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {
            "coding": [
                {
                    "system": KAP_OBS,
                    "code": "escort-confirmed",
                    "display": "Ride home / escort confirmed",
                }
            ]
        },
        "subject": _subject(ctx),
        "effectiveDateTime": ctx.t0.isoformat(),
        "valueBoolean": True,
    }
    return [
        Action(type="create", description="Record that a ride home is confirmed", resource=resource)
    ]


def discharge_instruction(ctx: ActionContext, _params: Mapping[str, str]) -> list[Action]:
    resource: dict[str, Any] = {
        "resourceType": "CommunicationRequest",
        "status": "draft",
        "subject": _subject(ctx),
        "payload": [{"contentString": ctx.text}],
        "authoredOn": ctx.t0.isoformat(),
    }
    if ctx.encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{ctx.encounter_id}"}
    return [
        Action(type="create", description="Add to the discharge instructions", resource=resource)
    ]


def _order(code: str, display: str) -> Builder:
    return lambda ctx, _params: _service_request(ctx, code, display)


def _visit(kind: str, display: str) -> Builder:
    return lambda ctx, _params: _proposed_visit(ctx, kind, display)


ACTIONS: dict[str, Builder] = {
    "cancel-draft-order": cancel_draft_order,
    "order-bp-check": _order("85354-9", "Blood pressure panel"),
    "order-pregnancy-test": _order("2106-3", "hCG (pregnancy test), urine, qualitative"),
    "order-weight": _order("29463-7", "Body weight"),
    "order-lft-panel": _order("24325-3", "Hepatic function panel"),
    "order-urinalysis": _order("24356-8", "Urinalysis complete panel"),
    "order-phq9": _order("44249-1", "PHQ-9 depression assessment"),
    "order-pulse-oximetry": _order("59408-5", "Oxygen saturation by pulse oximetry"),
    "schedule-preparation": _visit("kap-preparation", "KAP preparation session"),
    "schedule-integration": _visit("kap-integration", "KAP integration session"),
    "record-escort": record_escort,
    "discharge-instruction": discharge_instruction,
}
