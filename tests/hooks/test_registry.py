"""The service registry (docs/contracts.md "Services")."""

from __future__ import annotations

import pytest

from cds.errors import ServiceNotFound
from cds.hooks.models import CONTEXT_MODELS
from cds.hooks.registry import SERVICES, ServiceDescriptor, discovery, service, service_for_hook


def test_six_services_one_per_hook() -> None:
    assert [(s.id, s.hook) for s in SERVICES] == [
        ("kap-order-select", "order-select"),
        ("kap-order-sign", "order-sign"),
        ("kap-appointment-book", "appointment-book"),
        ("kap-encounter-start", "encounter-start"),
        ("kap-encounter-discharge", "encounter-discharge"),
        ("kap-patient-view", "patient-view"),
    ]
    assert {s.hook for s in SERVICES} == set(CONTEXT_MODELS)


@pytest.mark.parametrize("descriptor", SERVICES, ids=lambda s: s.id)
def test_only_patient_is_required_and_every_key_says_what_it_is_for(
    descriptor: ServiceDescriptor,
) -> None:
    assert service(descriptor.id) is descriptor
    assert descriptor.required_keys == {"patient"}
    for key in descriptor.prefetch:
        assert key.used_for
        assert "{{context.patientId}}" in key.template or key.name == "encounter"


def test_encounter_key_only_on_encounter_services() -> None:
    with_encounter = {s.id for s in SERVICES if "encounter" in s.templates}
    assert with_encounter == {"kap-encounter-start", "kap-encounter-discharge"}
    assert service("kap-encounter-start").templates["encounter"] == (
        "Encounter/{{context.encounterId}}"
    )


def test_unknown_ids_and_hooks() -> None:
    with pytest.raises(ServiceNotFound, match="no CDS service with id 'x'"):
        service("x")
    with pytest.raises(ServiceNotFound):
        service_for_hook("medication-prescribe")


def test_discovery_without_ruleset_has_no_extension() -> None:
    entries = discovery(None)["services"]
    assert len(entries) == 6
    assert all("extension" not in e for e in entries)
    assert all(e["usageRequirements"].startswith("Requires patient") for e in entries)
