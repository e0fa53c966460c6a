"""The FHIR fallback against a real loopback HTTP server (no mock between us and the socket)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from cds.config import Settings
from cds.fhir.gather import gather_sync
from cds.hooks.models import CdsRequest
from cds.hooks.registry import service
from cds.pipeline_types import KeyOutcome

TOKEN = "loopback-token-abc123"


class FakeEhr(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        FakeEhr.seen.append((self.path, self.headers.get("Authorization")))
        body: dict[str, Any]
        if self.path == "/fhir/Patient/p1":
            body = {"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01"}
        elif self.path.startswith("/fhir/Condition"):
            body = {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": {"resourceType": "Condition", "id": "c1"}}],
            }
        else:
            body = {"resourceType": "Bundle", "type": "searchset"}
        payload = orjson.dumps(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep the test output clean


@pytest.fixture
def ehr_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEhr)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    finally:
        server.shutdown()
        server.server_close()


def test_patient_view_data_is_read_from_a_real_server(ehr_url: str, settings: Settings) -> None:
    settings.allow_insecure_fhir_server = True  # plain http on loopback, for the test only
    FakeEhr.seen.clear()
    cds_request = CdsRequest.model_validate(
        {
            "hook": "patient-view",
            "hookInstance": "h-1",
            "fhirServer": ehr_url,
            "fhirAuthorization": {
                "access_token": TOKEN,
                "token_type": "Bearer",
                "expires_in": 60,
                "scope": "patient/*.read",
                "subject": "kap-cds",
            },
            "context": {"userId": "Practitioner/u1", "patientId": "p1"},
        }
    )

    data = gather_sync(cds_request, settings, service=service("kap-patient-view"))

    assert data.outcomes["patient"] is KeyOutcome.fetched
    assert data.of_type("Patient")[0]["birthDate"] == "1980-01-01"
    assert [c["id"] for c in data.of_type("Condition")] == ["c1"]
    assert len(FakeEhr.seen) == 11
    assert {auth for _, auth in FakeEhr.seen} == {f"Bearer {TOKEN}"}
    assert ("/fhir/Observation?patient=p1", f"Bearer {TOKEN}") in FakeEhr.seen
