"""Bounded work (issue 14 item 5): evaluation off the event loop, a deadline that answers on
time, a per-process limit on calls in progress. In process, with a fake evaluator that blocks
until the test lets it go, so nothing here depends on how fast the machine is."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from api_fakes import FIXED_NOW, FakeAudit, FakeEvaluator
from fastapi.testclient import TestClient

from cds.api.work import WorkPool
from cds.app import create_app
from cds.config import Settings
from cds.pipeline_types import Evaluation, PatientData

URL = "/cds-services/kap-order-sign"


class BlockingEvaluator(FakeEvaluator):
    """``evaluate`` waits for ``release``; ``entered`` says an evaluation is running."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()

    def evaluate(
        self, *, service_id: str, context: dict[str, Any], data: PatientData, now: datetime
    ) -> Evaluation:
        self.entered.set()
        assert self.release.wait(timeout=30), "the test never released the evaluation"
        try:
            return super().evaluate(service_id=service_id, context=context, data=data, now=now)
        finally:
            self.finished.set()


@pytest.fixture
def blocking() -> Iterator[BlockingEvaluator]:
    evaluator = BlockingEvaluator()
    yield evaluator
    evaluator.release.set()  # never leave a pool thread waiting


def _client(
    tmp_path: Path, evaluator: FakeEvaluator, audit: FakeAudit | None = None, **values: Any
) -> TestClient:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        spool_dir=tmp_path / "spool",
        **values,
    )
    app = create_app(
        settings, evaluator=evaluator, audit=audit or FakeAudit(), clock=lambda: FIXED_NOW
    )
    return TestClient(app)


def test_healthz_answers_while_an_evaluation_is_running(
    tmp_path: Path, blocking: BlockingEvaluator, order_sign_request: dict[str, Any]
) -> None:
    with _client(tmp_path, blocking) as client, ThreadPoolExecutor(1) as background:
        call = background.submit(client.post, URL, json=order_sign_request)
        assert blocking.entered.wait(timeout=30)
        assert client.get("/healthz").json() == {"status": "ok"}
        metrics = client.get("/metrics").text
        assert "kap_cds_calls_in_progress 1.0" in metrics
        assert not call.done()  # the evaluation is still running
        blocking.release.set()
        assert call.result(timeout=30).status_code == 200


def test_a_call_past_the_deadline_gets_a_503_while_its_evaluation_still_runs(
    tmp_path: Path, blocking: BlockingEvaluator, order_sign_request: dict[str, Any]
) -> None:
    audit = FakeAudit()
    values = {"request_timeout_seconds": 0.2, "retry_after_seconds": 7}
    with _client(tmp_path, blocking, audit, **values) as client:
        response = client.post(URL, json=order_sign_request)
        assert not blocking.finished.is_set()  # answered before the evaluation ended
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "7"
        assert response.headers["Content-Type"].startswith("application/json")
        issue = response.json()["issue"][0]
        assert issue["details"]["coding"][0]["code"] == "CDS-1503"
        assert "longer than 0.2 s" in issue["details"]["text"]
        blocking.release.set()
        assert blocking.finished.wait(timeout=30)
        # The evaluation ran on, but its decision was never answered: none is recorded.
        client.get("/healthz")  # the pool thread has returned by the next call
        assert audit.evaluations == []


def test_calls_beyond_the_limit_get_a_503_at_once_and_timed_out_work_keeps_its_slot(
    tmp_path: Path, blocking: BlockingEvaluator, order_sign_request: dict[str, Any]
) -> None:
    settings = {"max_concurrent_calls": 1, "request_timeout_seconds": 0.3}
    with _client(tmp_path, blocking, **settings) as client:
        first = client.post(URL, json=order_sign_request)
        assert first.status_code == 503  # past its deadline; its evaluation still runs
        assert blocking.entered.is_set() and not blocking.finished.is_set()
        busy = client.post(URL, json=order_sign_request)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
        assert "Busy" in busy.json()["issue"][0]["details"]["text"]
        blocking.release.set()
        assert blocking.finished.wait(timeout=30)
        blocking.entered.clear()
        assert _eventually_ok(client, order_sign_request)


def _eventually_ok(client: TestClient, body: dict[str, Any]) -> bool:
    # The slot is given back by the pool thread right after the evaluation returns.
    for _ in range(100):
        response = client.post(URL, json=body)
        if response.status_code == 200:
            return True
        threading.Event().wait(0.05)
    return False


def test_large_calls_run_one_at_a_time_and_small_ones_do_not_wait_for_them() -> None:
    pool = WorkPool(threads=2, max_in_flight=8, retry_after_seconds=1, large_call_bytes=1_000)
    first_inside, release, second_inside = threading.Event(), threading.Event(), threading.Event()

    def first_large() -> str:
        first_inside.set()
        assert release.wait(timeout=30)
        return "first"

    def second_large() -> str:
        second_inside.set()
        return "second"

    async def calls() -> None:
        with pool.admit() as one, pool.admit() as two, pool.admit() as three:
            first = asyncio.create_task(one.run_alone(first_large))
            assert await asyncio.to_thread(first_inside.wait, 30)
            second = asyncio.create_task(two.run_alone(second_large))
            # While one large call runs and the next waits its turn, a small one is answered.
            assert await three.run(lambda: "small") == "small"
            assert not second_inside.is_set()
            release.set()
            assert (await first, await second) == ("first", "second")

    assert pool.is_large(5_000) and not pool.is_large(500)
    try:
        asyncio.run(calls())
    finally:
        release.set()
        pool.close()
