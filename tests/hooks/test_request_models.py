"""CDS Hooks request, context and feedback models."""

from __future__ import annotations

from typing import Any

import pytest

from cds.hooks.models import (
    CdsRequest,
    InvalidField,
    json_object,
    parse_call,
    parse_context,
    validate_as,
)

USER, PATIENT = "Practitioner/u1", "p1"
BUNDLE = {"resourceType": "Bundle", "type": "collection", "entry": []}

VALID_CONTEXTS: dict[str, dict[str, Any]] = {
    "order-select": {
        "userId": USER,
        "patientId": PATIENT,
        "selections": ["MedicationRequest/m1"],
        "draftOrders": BUNDLE,
    },
    "order-sign": {"userId": USER, "patientId": PATIENT, "draftOrders": BUNDLE},
    "appointment-book": {"userId": USER, "patientId": PATIENT, "appointments": BUNDLE},
    "encounter-start": {"userId": USER, "patientId": PATIENT, "encounterId": "e1"},
    "encounter-discharge": {"userId": USER, "patientId": PATIENT, "encounterId": "e1"},
    "patient-view": {"userId": USER, "patientId": PATIENT},
}

REQUIRED = {
    "order-select": ["selections", "draftOrders", "userId", "patientId"],
    "order-sign": ["draftOrders", "userId", "patientId"],
    "appointment-book": ["appointments"],
    "encounter-start": ["encounterId"],
    "encounter-discharge": ["encounterId"],
    "patient-view": ["userId", "patientId"],
}


@pytest.mark.parametrize("hook", sorted(VALID_CONTEXTS))
def test_each_hook_context_validates_and_keeps_unknown_fields(hook: str) -> None:
    context = {**VALID_CONTEXTS[hook], "vendorExtra": {"x": 1}}
    parsed = parse_context(hook, context)
    assert parsed.patientId == PATIENT
    assert parsed.model_extra == {"vendorExtra": {"x": 1}}


@pytest.mark.parametrize(("hook", "field"), [(h, f) for h, fs in REQUIRED.items() for f in fs])
def test_required_context_fields(hook: str, field: str) -> None:
    context = {k: v for k, v in VALID_CONTEXTS[hook].items() if k != field}
    with pytest.raises(InvalidField) as error:
        parse_context(hook, context)
    assert error.value.expression == [f"context.{field}"]
    assert error.value.detail == f"context.{field}: Field required"


def test_draft_orders_must_be_a_bundle() -> None:
    context = {**VALID_CONTEXTS["order-sign"], "draftOrders": {"resourceType": "Patient"}}
    with pytest.raises(
        InvalidField, match="context.draftOrders: Value error, must be a FHIR Bundle"
    ):
        parse_context("order-sign", context)


def test_bare_appointment_list_becomes_a_bundle() -> None:
    appointment = {"resourceType": "Appointment", "id": "a1", "status": "proposed"}
    body = {
        "hook": "appointment-book",
        "hookInstance": "h",
        "context": {**VALID_CONTEXTS["appointment-book"], "appointments": [appointment]},
    }
    call = parse_call(body, "appointment-book")
    assert call.context["appointments"]["resourceType"] == "Bundle"
    assert call.context["appointments"]["entry"] == [{"resource": appointment}]


def test_fhir_authorization_needs_fhir_server_and_hides_the_token() -> None:
    auth = {
        "access_token": "s3cret",
        "token_type": "Bearer",
        "expires_in": 60,
        "scope": "patient/*.read",
        "subject": "kap-cds",
    }
    body = {"hook": "patient-view", "hookInstance": "h", "context": {}, "fhirAuthorization": auth}
    with pytest.raises(InvalidField) as error:
        validate_as(CdsRequest, body)
    assert error.value.expression == ["fhirAuthorization"]
    assert "fhirServer is required" in error.value.detail

    ok = CdsRequest.model_validate({**body, "fhirServer": "https://ehr.example.org/fhir/"})
    assert ok.fhirServer == "https://ehr.example.org/fhir"
    assert ok.access_token == "s3cret"
    assert "s3cret" not in repr(ok) and "s3cret" not in str(ok.model_dump())


@pytest.mark.parametrize(
    ("changes", "expression"),
    [
        (
            {
                "fhirAuthorization": {
                    "access_token": "t",
                    "token_type": "MAC",
                    "expires_in": 1,
                    "scope": "s",
                    "subject": "s",
                },
                "fhirServer": "https://x/",
            },
            "fhirAuthorization.token_type",
        ),
        ({"fhirServer": "ftp://ehr/fhir"}, "fhirServer"),
        ({"fhirServer": "https://user:pw@ehr/fhir"}, "fhirServer"),
        ({"hookInstance": ""}, "hookInstance"),
        ({"prefetch": {"patient": "Patient/1"}}, "prefetch.patient"),
    ],
)
def test_invalid_request_fields_are_named(changes: dict[str, Any], expression: str) -> None:
    body = {"hook": "patient-view", "hookInstance": "h", "context": {}, **changes}
    with pytest.raises(InvalidField) as error:
        validate_as(CdsRequest, body)
    assert error.value.expression == [expression]
    assert "pw" not in error.value.detail


def test_json_object_rejects_non_objects_and_bad_json() -> None:
    with pytest.raises(InvalidField, match="not valid JSON"):
        json_object(b"{,}")
    with pytest.raises(InvalidField, match="empty body"):
        json_object(b"")
    with pytest.raises(InvalidField, match="must be a JSON object"):
        json_object(b"[]")
    assert json_object(b'{"a": 1}') == {"a": 1}
