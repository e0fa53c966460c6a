"""The real service in process: the real evaluator (built once) and a SQLite audit store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from robust_support import isolated_settings

from cds.app import create_app
from cds.audit import open_store
from cds.evaluator import RuleEvaluator, build_evaluator


class Clock:
    """A settable clock for the app: patient-view evaluates at ``now``."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="session")
def real_evaluator(tmp_path_factory: pytest.TempPathFactory) -> RuleEvaluator:
    return build_evaluator(isolated_settings(tmp_path_factory.mktemp("rules")))


ClientFactory = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def make_client(tmp_path: Path, real_evaluator: RuleEvaluator) -> ClientFactory:
    """``with make_client(clock=..., **settings) as client``: a fresh app on the real pipeline."""

    @contextmanager
    def factory(clock: Clock | None = None, **overrides: Any) -> Iterator[TestClient]:
        state = tmp_path / f"state-{len(list(tmp_path.iterdir()))}"
        state.mkdir()
        settings = isolated_settings(state, **overrides)
        audit = open_store(settings)
        app = create_app(settings, evaluator=real_evaluator, audit=audit, clock=clock or Clock())
        try:
            with TestClient(app, raise_server_exceptions=False) as client:
                yield client
        finally:
            audit.close()

    return factory


@pytest.fixture
def client(make_client: ClientFactory) -> Iterator[TestClient]:
    with make_client() as test_client:
        yield test_client
