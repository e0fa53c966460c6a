"""An app wired with the fake evaluator and audit, and a fake FHIR server for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from api_fakes import FIXED_NOW, FakeAudit, FakeEvaluator
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.config import Settings


@pytest.fixture
def evaluator() -> FakeEvaluator:
    return FakeEvaluator()


@pytest.fixture
def audit() -> FakeAudit:
    return FakeAudit()


@pytest.fixture
def app(settings: Settings, evaluator: FakeEvaluator, audit: FakeAudit) -> FastAPI:
    return create_app(settings, evaluator=evaluator, audit=audit, clock=lambda: FIXED_NOW)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


FhirHandler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def fhir_server(app: FastAPI, client: TestClient) -> Callable[[FhirHandler], list[httpx.Request]]:
    """Replace the app's FHIR client with one answering from ``handler``; returns the requests
    it received."""

    def install(handler: FhirHandler) -> list[httpx.Request]:
        seen: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return handler(request)

        app.state.runtime.http_client = httpx.AsyncClient(transport=httpx.MockTransport(record))
        return seen

    return install
