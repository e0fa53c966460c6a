"""/docs and /redoc work without internet (assets from the package), and /openapi.json
describes the JWT scheme, every error answer and one example request per service."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_fakes import FakeAudit, FakeEvaluator
from fastapi.testclient import TestClient

from cds.api.docs_examples import EXAMPLE_FILES
from cds.app import create_app
from cds.config import Settings, TrustedIssuer
from cds.hooks.registry import SERVICES

EXTERNAL = re.compile(r"""(src|href)=["']?(https?:)?//""", re.IGNORECASE)


@pytest.fixture
def jwt_client(settings: Settings) -> Iterator[TestClient]:
    settings.trusted_issuers = [TrustedIssuer(iss="https://ehr.example.org", jwks={"keys": []})]
    settings.public_base_url = "http://testserver"
    app = create_app(settings, evaluator=FakeEvaluator(), audit=FakeAudit())
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_load_nothing_from_outside(jwt_client: TestClient, page: str) -> None:
    response = jwt_client.get(page)  # no token: the documentation is public
    assert response.status_code == 200
    html = response.text
    assert not EXTERNAL.search(html), "the page must not load from a CDN"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts
    for asset in assets:
        got = jwt_client.get(asset)
        assert got.status_code == 200, asset
        assert len(got.content) > 1000 or asset.endswith(".png"), asset


def test_other_asset_paths_stay_closed(jwt_client: TestClient) -> None:
    assert jwt_client.get("/docs/assets/other.js").status_code == 401


def test_openapi_describes_the_jwt_scheme_and_where_it_applies(jwt_client: TestClient) -> None:
    schema = jwt_client.get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["cdsHooksJwt"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    paths = schema["paths"]
    assert paths["/cds-services/{service_id}"]["post"]["security"] == [{"cdsHooksJwt": []}]
    assert "401" in paths["/cds-services"]["get"]["responses"]
    assert "security" not in paths["/healthz"]["get"]
    assert "401" not in paths["/healthz"]["get"]["responses"]


def test_open_service_documents_no_401(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "401" not in paths["/cds-services/{service_id}"]["post"]["responses"]
    assert "security" not in paths["/cds-services/{service_id}"]["post"]


@pytest.mark.parametrize("status", ["400", "401", "404", "412", "413", "415", "429", "503"])
def test_every_error_answer_is_an_operation_outcome(jwt_client: TestClient, status: str) -> None:
    schema = jwt_client.get("/openapi.json").json()
    response = schema["paths"]["/cds-services/{service_id}"]["post"]["responses"][status]
    content = response["content"]["application/json"]
    assert content["schema"] == {"$ref": "#/components/schemas/OperationOutcome"}
    example = content["example"]
    assert example["resourceType"] == "OperationOutcome"
    coding = example["issue"][0]["details"]["coding"][0]
    assert coding == {"system": "urn:kap-cds:error", "code": f"CDS-1{status}"}


def test_feedback_has_no_412(jwt_client: TestClient) -> None:
    paths = jwt_client.get("/openapi.json").json()["paths"]
    assert "412" not in paths["/cds-services/{service_id}/feedback"]["post"]["responses"]


@pytest.fixture(scope="module")
def real_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    state = tmp_path_factory.mktemp("docs")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        state_dir=state,
    )
    app = create_app(settings, clock=lambda: datetime(2026, 11, 20, 9, tzinfo=UTC))
    with TestClient(app) as test_client:
        yield test_client


def _examples(client: TestClient) -> dict[str, Any]:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/cds-services/{service_id}"]["post"]["requestBody"]
    examples: dict[str, Any] = body["content"]["application/json"]["examples"]
    return examples


def test_one_example_per_service(real_client: TestClient) -> None:
    assert set(_examples(real_client)) == {s.id for s in SERVICES} == set(EXAMPLE_FILES)


@pytest.mark.parametrize("service", [s for s in SERVICES], ids=lambda s: s.id)
def test_each_example_is_answered(real_client: TestClient, service: Any) -> None:
    example = _examples(real_client)[service.id]["value"]
    assert example["hook"] == service.hook
    response = real_client.post(f"/cds-services/{service.id}", json=example)
    assert response.status_code == 200, response.text


def test_examples_missing_from_an_install_leave_the_document_valid(tmp_path: Path) -> None:
    from cds.api.docs_examples import example_requests

    assert example_requests(tmp_path) == {}
