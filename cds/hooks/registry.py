"""The one registry of kap-cds services: ids, hooks, prefetch templates and what each key is for.

Discovery (``GET /cds-services``), data gathering and the README's registration table are all
generated from ``SERVICES``; the ids and hooks are a stable contract (docs/contracts.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cds.errors import ServiceNotFound

RULESET_EXTENSION = "org.kapcds.ruleset"
PATIENT = "{{context.patientId}}"


@dataclass(frozen=True)
class PrefetchKey:
    """One prefetch template. Only ``required`` keys make a request fail (412) when unavailable;
    for the others the domain shows a card naming the checks that could not run."""

    name: str
    template: str
    used_for: str
    required: bool = False


@dataclass(frozen=True)
class ServiceDescriptor:
    id: str
    hook: str
    title: str
    description: str
    prefetch: tuple[PrefetchKey, ...]

    @property
    def templates(self) -> dict[str, str]:
        return {key.name: key.template for key in self.prefetch}

    @property
    def required_keys(self) -> frozenset[str]:
        return frozenset(key.name for key in self.prefetch if key.required)

    def key(self, name: str) -> PrefetchKey | None:
        return next((k for k in self.prefetch if k.name == name), None)

    @property
    def usage_requirements(self) -> str:
        required = ", ".join(sorted(self.required_keys))
        return (
            f"Requires {required} (prefetch or FHIR read access, else HTTP 412). Other keys are "
            "optional: when they cannot be had, a card names the checks that could not run."
        )

    def discovery_entry(self, extension: Mapping[str, Any] | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": self.templates,
            "usageRequirements": self.usage_requirements,
        }
        if extension:
            entry["extension"] = dict(extension)
        return entry


def _search(resource_type: str) -> str:
    return f"{resource_type}?patient={PATIENT}"


# Shared by every service: each rule family may need any of them (intervals read earlier doses
# whatever the hook), and one template set keeps the EHR configuration simple.
_COMMON_KEYS = (
    PrefetchKey("patient", f"Patient/{PATIENT}", "age and identity of the patient", required=True),
    PrefetchKey(
        "conditions", _search("Condition"), "contraindications and cautions from diagnoses"
    ),
    PrefetchKey(
        "allergies", _search("AllergyIntolerance"), "ketamine and esketamine hypersensitivity"
    ),
    PrefetchKey(
        "medicationRequests",
        _search("MedicationRequest"),
        "interacting medications, earlier KAP orders (intervals, course length)",
    ),
    PrefetchKey(
        "medicationStatements",
        _search("MedicationStatement"),
        "interacting medications the patient reports taking",
    ),
    PrefetchKey(
        "medicationAdministrations",
        _search("MedicationAdministration"),
        "earlier KAP doses (session and booster intervals)",
    ),
    PrefetchKey(
        "observations",
        _search("Observation"),
        "blood pressure, weight, fasting times, escort, MADRS, REMS enrolment, pregnancy",
    ),
    PrefetchKey("procedures", _search("Procedure"), "recent procedures relevant to safety checks"),
    PrefetchKey("consents", _search("Consent"), "informed consent for KAP"),
    PrefetchKey(
        "appointments", _search("Appointment"), "preparation, dosing and integration visits"
    ),
    PrefetchKey("encounters", _search("Encounter"), "earlier dosing sessions and visits"),
)

_ENCOUNTER_KEY = PrefetchKey(
    "encounter", "Encounter/{{context.encounterId}}", "the dosing encounter being started or ended"
)


def _service(
    id_: str, hook: str, title: str, description: str, *extra: PrefetchKey
) -> ServiceDescriptor:
    return ServiceDescriptor(id_, hook, title, description, _COMMON_KEYS + extra)


SERVICES: tuple[ServiceDescriptor, ...] = (
    _service(
        "kap-order-select",
        "order-select",
        "KAP order safety (select)",
        "Early contraindication and data checks when a ketamine or esketamine order is selected.",
    ),
    _service(
        "kap-order-sign",
        "order-sign",
        "KAP order safety (sign)",
        "Contraindications, dose by route, fasting, driving restriction, session and booster "
        "intervals, consent and REMS checks when a ketamine or esketamine order is signed.",
    ),
    _service(
        "kap-appointment-book",
        "appointment-book",
        "KAP dosing appointment checks",
        "Session spacing, preparation visit, escort and fasting instructions when a KAP "
        "dosing appointment is booked.",
    ),
    _service(
        "kap-encounter-start",
        "encounter-start",
        "KAP dosing session start checks",
        "Blood pressure, fasting, escort and consent checks when a KAP dosing encounter starts.",
        _ENCOUNTER_KEY,
    ),
    _service(
        "kap-encounter-discharge",
        "encounter-discharge",
        "KAP post-dose discharge checks",
        "Post-dose monitoring, blood pressure and driving restriction checks when a KAP "
        "dosing encounter ends.",
        _ENCOUNTER_KEY,
    ),
    _service(
        "kap-patient-view",
        "patient-view",
        "KAP treatment overview",
        "Course progress, booster timing and outstanding KAP safety items when the chart of "
        "a patient in ketamine-assisted psychotherapy is opened.",
    ),
)

SERVICES_BY_ID: Mapping[str, ServiceDescriptor] = MappingProxyType({s.id: s for s in SERVICES})
HOOKS: frozenset[str] = frozenset(s.hook for s in SERVICES)


def service(service_id: str) -> ServiceDescriptor:
    """The service with this id, or ``ServiceNotFound`` (HTTP 404)."""
    try:
        return SERVICES_BY_ID[service_id]
    except KeyError:
        raise ServiceNotFound(f"no CDS service with id {service_id[:80]!r}") from None


def service_for_hook(hook: str) -> ServiceDescriptor:
    """The service answering ``hook`` (one per hook), or ``ServiceNotFound``."""
    for candidate in SERVICES:
        if candidate.hook == hook:
            return candidate
    raise ServiceNotFound(f"no CDS service for hook {hook[:80]!r}")


def discovery(ruleset_info: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``GET /cds-services`` body; ``ruleset_info`` is published for auditors on each entry."""
    extension = {RULESET_EXTENSION: dict(ruleset_info)} if ruleset_info else None
    return {"services": [s.discovery_entry(extension) for s in SERVICES]}
