"""Is this a KAP request at all? Decided from the hook context alone, before any data is fetched.

EHRs call order-select and order-sign for every order; anything that is not ketamine or
esketamine gets ``{"cards": []}`` at once, without gathering data or running rules.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from cds.facts.drugs import KapDrugs, medications_by_id
from cds.facts.fhir import codings

APPOINTMENT_TYPES = "urn:kap-cds:appointment-type"


class Triage(StrEnum):
    KAP = "kap"
    NOT_KAP = "not-kap"
    NEEDS_DATA = "needs-data"  # only the patient's data can tell (encounters, chart open)


def bundle_resources(bundle: Any) -> list[dict[str, Any]]:
    if not isinstance(bundle, dict):
        return []
    entries = bundle.get("entry") or ()
    return [
        e["resource"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]


def kap_orders(context: dict[str, Any], drugs: KapDrugs) -> list[tuple[dict[str, Any], str]]:
    """The draft MedicationRequests of an order hook that are KAP orders, with their drug.

    For order-select only the selected orders count (the spec's ``selections``)."""
    resources = bundle_resources(context.get("draftOrders"))
    medications = medications_by_id(r for r in resources if r.get("resourceType") == "Medication")
    selections = context.get("selections")
    selected = {s.rsplit("/", 1)[-1] for s in selections} if isinstance(selections, list) else None
    found = []
    for resource in resources:
        if resource.get("resourceType") != "MedicationRequest":
            continue
        if selected is not None and str(resource.get("id")) not in selected:
            continue
        drug = drugs.classify(resource, medications)
        if drug:
            found.append((resource, drug))
    return found


def is_kap_appointment(appointment: dict[str, Any]) -> bool:
    concepts = [*(appointment.get("serviceType") or ()), appointment.get("appointmentType")]
    return any(
        system == APPOINTMENT_TYPES and code == "kap-dosing"
        for concept in concepts
        for system, code, _display in codings(concept)
    )


def triage(hook: str, context: dict[str, Any], drugs: KapDrugs) -> Triage:
    if hook in ("order-select", "order-sign"):
        return Triage.KAP if kap_orders(context, drugs) else Triage.NOT_KAP
    if hook == "appointment-book":
        appointments = [
            r
            for r in bundle_resources(context.get("appointments"))
            if r.get("resourceType") == "Appointment"
        ]
        if any(is_kap_appointment(a) for a in appointments):
            return Triage.KAP
        # A dosing appointment may only point at its KAP order (supportingInformation).
        linked = any(a.get("supportingInformation") for a in appointments)
        return Triage.NEEDS_DATA if linked else Triage.NOT_KAP
    return Triage.NEEDS_DATA
