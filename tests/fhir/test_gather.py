"""gather(): prefetch outcomes, the FHIR fallback (httpx.MockTransport), paging and limits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cds.config import Settings
from cds.errors import DataUnavailable
from cds.fhir.gather import gather, gather_sync
from cds.hooks.models import CdsRequest
from cds.hooks.registry import PrefetchKey, ServiceDescriptor, service
from cds.pipeline_types import KeyOutcome, PatientData

SERVER = "https://ehr.example.org/fhir"
TOKEN = "secret-access-token-0123456789"
PATIENT = {"resourceType": "Patient", "id": "p1"}
CONTEXT = {"userId": "Practitioner/u1", "patientId": "p1"}

# A small service keeps the fake server's job small: patient (required) + conditions.
TWO_KEYS = ServiceDescriptor(
    "t",
    "patient-view",
    "t",
    "t",
    (
        PrefetchKey("patient", "Patient/{{context.patientId}}", "who", required=True),
        PrefetchKey("conditions", "Condition?patient={{context.patientId}}", "diagnoses"),
    ),
)

Handler = Callable[[httpx.Request], httpx.Response]


def request(
    prefetch: dict[str, Any] | None,
    *,
    server: str | None = SERVER,
    context: dict[str, Any] | None = None,
) -> CdsRequest:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "h-1",
        "context": context or CONTEXT,
        "prefetch": prefetch,
    }
    if server is not None:
        body["fhirServer"] = server
        body["fhirAuthorization"] = {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "kap-cds",
        }
    return CdsRequest.model_validate(body)


def run(
    cds_request: CdsRequest, handler: Handler, settings: Settings, svc: ServiceDescriptor = TWO_KEYS
) -> tuple[PatientData, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return handler(req)

    async def go() -> PatientData:
        async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
            return await gather(cds_request, settings, service=svc, client=client)

    return asyncio.run(go()), seen


def searchset(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def fail(req: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected FHIR request {req.url}")


def test_prefetched_empty_and_failed_keys(settings: Settings) -> None:
    oo = {"resourceType": "OperationOutcome", "issue": []}
    data, seen = run(request({"patient": PATIENT, "conditions": None}), fail, settings)
    assert data.outcomes == {"patient": KeyOutcome.prefetched, "conditions": KeyOutcome.empty}
    assert data.of_type("Patient") == [PATIENT] and seen == []

    data, _ = run(request({"patient": PATIENT, "conditions": oo}), fail, settings)
    assert data.outcomes["conditions"] is KeyOutcome.failed
    assert data.unavailable_keys == ("conditions",)


def test_required_key_failed_or_missing_raises_data_unavailable(settings: Settings) -> None:
    oo = {"resourceType": "OperationOutcome", "issue": []}
    with pytest.raises(DataUnavailable) as failed:
        run(request({"patient": oo, "conditions": None}), fail, settings)
    assert failed.value.missing == ["patient"]

    with pytest.raises(DataUnavailable) as missing:
        gather_sync(request({"conditions": None}, server=None), settings, service=TWO_KEYS)
    assert missing.value.missing == ["patient"]
    assert "no fhirServer" in missing.value.detail


def test_absent_optional_key_without_server_is_missing(settings: Settings) -> None:
    data = gather_sync(request({"patient": PATIENT}, server=None), settings, service=TWO_KEYS)
    assert data.outcomes["conditions"] is KeyOutcome.missing


def test_full_patient_bundle_and_context_resources_are_flattened(settings: Settings) -> None:
    draft = {"resourceType": "MedicationRequest", "id": "m1", "status": "draft"}
    stored = {"resourceType": "MedicationRequest", "id": "m1", "status": "active"}
    everything = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": PATIENT},
            {"resource": stored},
            {"resource": {"resourceType": "Condition", "id": "c1"}},
        ],
    }
    context = {**CONTEXT, "draftOrders": searchset(draft)}
    cds_request = request(
        {"patient": PATIENT, "conditions": None, "bundle": everything}, context=context
    )

    data, _ = run(cds_request, fail, settings)

    assert data.of_type("MedicationRequest") == [draft]  # the draft order wins
    assert [c["id"] for c in data.of_type("Condition")] == ["c1"]
    assert "bundle" not in data.outcomes  # extra keys add data, not outcomes


def test_fallback_sends_the_bearer_token_and_follows_next_links(settings: Settings) -> None:
    pages = {
        "/fhir/Patient/p1": PATIENT,
        "/fhir/Condition": searchset(
            {"resourceType": "Condition", "id": "c1"}, next_url=f"{SERVER}?_getpages=x&page=2"
        ),
        "/fhir": searchset({"resourceType": "Condition", "id": "c2"}),
    }
    data, seen = run(request({}), lambda r: httpx.Response(200, json=pages[r.url.path]), settings)

    assert data.outcomes == {"patient": KeyOutcome.fetched, "conditions": KeyOutcome.fetched}
    assert [c["id"] for c in data.of_type("Condition")] == ["c1", "c2"]
    assert {r.headers["authorization"] for r in seen} == {f"Bearer {TOKEN}"}
    assert str(seen[0].url) in (f"{SERVER}/Patient/p1", f"{SERVER}/Condition?patient=p1")
    assert len(seen) == 3


def test_paging_is_bounded_and_marks_the_key_failed(settings: Settings) -> None:
    settings.fhir_max_pages = 3

    def endless(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/Patient/p1"):
            return httpx.Response(200, json=PATIENT)
        n = int(req.url.params.get("page", "0"))
        condition = {"resourceType": "Condition", "id": f"c{n}"}
        return httpx.Response(200, json=searchset(condition, next_url=f"{SERVER}?page={n + 1}"))

    data, seen = run(request({"patient": PATIENT}), endless, settings)

    assert len(seen) == 3
    assert data.outcomes["conditions"] is KeyOutcome.failed  # incomplete is not "all there"
    assert len(data.of_type("Condition")) == 3  # what was read is still used


def test_next_link_to_another_host_is_not_followed(settings: Settings) -> None:
    def ehr(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=searchset(next_url="https://ehr.example.org.evil/fhir"))

    data, seen = run(request({"patient": PATIENT}), ehr, settings)

    assert data.outcomes["conditions"] is KeyOutcome.failed
    assert [r.url.host for r in seen] == ["ehr.example.org"]


@pytest.mark.parametrize(
    ("response", "outcome"),
    [
        (httpx.Response(404), KeyOutcome.empty),  # a read of an absent resource: no data
        (httpx.Response(500), KeyOutcome.failed),
        (httpx.Response(200, content=b"not json"), KeyOutcome.failed),
        (httpx.Response(200, json={"resourceType": "OperationOutcome"}), KeyOutcome.failed),
        (httpx.Response(200, json=[1, 2]), KeyOutcome.failed),
        (httpx.Response(302, headers={"location": "https://elsewhere/"}), KeyOutcome.failed),
    ],
)
def test_read_results(settings: Settings, response: httpx.Response, outcome: KeyOutcome) -> None:
    only_encounter = ServiceDescriptor(
        "t",
        "patient-view",
        "t",
        "t",
        (PrefetchKey("encounter", "Encounter/{{context.encounterId}}", "visit"),),
    )
    context = {**CONTEXT, "encounterId": "e1"}
    data, _ = run(request({}, context=context), lambda r: response, settings, only_encounter)
    assert data.outcomes["encounter"] is outcome


def test_response_size_is_capped(settings: Settings) -> None:
    settings.fhir_max_response_bytes = 1000
    big = searchset(*({"resourceType": "Condition", "id": f"c{i}"} for i in range(100)))

    data, _ = run(request({"patient": PATIENT}), lambda r: httpx.Response(200, json=big), settings)

    assert data.outcomes["conditions"] is KeyOutcome.failed


def test_timeout_marks_the_key_failed(settings: Settings) -> None:
    def slow(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)

    data, _ = run(request({"patient": PATIENT}), slow, settings)

    assert data.outcomes["conditions"] is KeyOutcome.failed


def test_plain_http_server_is_not_read_unless_allowed(settings: Settings) -> None:
    ok = lambda r: httpx.Response(200, json=searchset())  # noqa: E731
    data, seen = run(request({"patient": PATIENT}, server="http://ehr.local/fhir"), ok, settings)
    assert data.outcomes["conditions"] is KeyOutcome.failed and seen == []

    settings.allow_insecure_fhir_server = True
    data, seen = run(request({"patient": PATIENT}, server="http://ehr.local/fhir"), ok, settings)
    assert data.outcomes["conditions"] is KeyOutcome.fetched and len(seen) == 1


def test_unresolvable_token_means_the_key_cannot_be_fetched(settings: Settings) -> None:
    empty = lambda r: httpx.Response(200, json=searchset())  # noqa: E731
    data, seen = run(request({"patient": PATIENT}), empty, settings, service("kap-encounter-start"))
    assert data.outcomes["encounter"] is KeyOutcome.missing  # no encounterId in the context
    assert data.outcomes["conditions"] is KeyOutcome.fetched
    assert not any("/Encounter/" in str(r.url) for r in seen)


def test_token_never_appears_in_logs(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def flaky(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/Patient/p1"):
            return httpx.Response(200, json=PATIENT)
        raise httpx.ConnectError(f"failed with headers {req.headers}", request=req)

    data, _ = run(request({}), flaky, settings)

    assert data.outcomes["conditions"] is KeyOutcome.failed
    assert "prefetch key conditions could not be read" in caplog.text
    assert TOKEN not in caplog.text
    assert "p1" not in caplog.text  # no patient id (it is in the URL) either


# One read budget per request, across every key (issue 14 item 5): each key alone fits the
# limit, all of them together do not.
FOUR_KEYS = ServiceDescriptor(
    "t",
    "patient-view",
    "t",
    "t",
    (
        PrefetchKey("patient", "Patient/{{context.patientId}}", "who", required=True),
        PrefetchKey("conditions", "Condition?patient={{context.patientId}}", "diagnoses"),
        PrefetchKey("allergies", "AllergyIntolerance?patient={{context.patientId}}", "allergies"),
        PrefetchKey("procedures", "Procedure?patient={{context.patientId}}", "procedures"),
    ),
)


def _thirty_of_a_kind(req: httpx.Request) -> httpx.Response:
    kind = req.url.path.rsplit("/", 1)[-1]
    return httpx.Response(
        200, json=searchset(*({"resourceType": kind, "id": f"r{i}"} for i in range(30)))
    )


def _fetched(data: PatientData) -> list[str]:
    return [k for k, v in data.outcomes.items() if v is KeyOutcome.fetched]


def test_bytes_are_budgeted_per_request_across_keys(settings: Settings) -> None:
    one_key = len(_thirty_of_a_kind(httpx.Request("GET", f"{SERVER}/AllergyIntolerance")).content)
    settings.fhir_max_response_bytes = int(one_key * 2.5)
    data, seen = run(request({"patient": PATIENT}), _thirty_of_a_kind, settings, FOUR_KEYS)
    assert len(seen) == 3
    assert len(_fetched(data)) == 2  # the third key ran out of the request's budget
    failed = [k for k, v in data.outcomes.items() if v is KeyOutcome.failed]
    assert len(failed) == 1


def test_resources_are_budgeted_per_request_across_keys(settings: Settings) -> None:
    settings.fhir_max_resources = 75  # 30 per key: two keys fit, the third does not
    data, _ = run(request({"patient": PATIENT}), _thirty_of_a_kind, settings, FOUR_KEYS)
    assert len(_fetched(data)) == 2
    assert sum(len(data.of_type(t)) for t in ("Condition", "AllergyIntolerance", "Procedure")) == 60


def test_within_the_budget_every_key_is_read(settings: Settings) -> None:
    settings.fhir_max_resources = 90
    data, _ = run(request({"patient": PATIENT}), _thirty_of_a_kind, settings, FOUR_KEYS)
    assert len(_fetched(data)) == 3
