"""The replay guard: one first use per token id across processes (engines), on SQLite and
PostgreSQL; expiry and purge; the node-local fallback while PostgreSQL is down; 503 when no store
can check the token."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from audit.conftest import closed_port, dead_engine
from fastapi.testclient import TestClient
from security_helpers import BASE, ISS, Minter, SigningKey, bearer, build_app, make_settings
from sqlalchemy import Engine

from cds.audit.db import create_audit_engine
from cds.config import TrustedIssuer
from cds.security.replay import ReplayGuard, ReplayStoreUnavailable, SqlJtiStore

SERVICE_PATH = "/cds-services/kap-order-sign"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


_ENGINES: list[Engine] = []


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    while _ENGINES:
        _ENGINES.pop().dispose()


def engine(url: str) -> Engine:
    made = create_audit_engine(url)
    _ENGINES.append(made)
    return made


def store(url: str, clock: Clock | None = None) -> SqlJtiStore:
    """A store on its own engine: what one more process or replica would have."""
    return SqlJtiStore(engine(url), clock=clock or Clock())


def test_a_token_id_is_accepted_once_across_processes(db_url: str) -> None:
    a, b = store(db_url), store(db_url)
    firsts = [a.first_use(ISS, f"jti-{i}", 2_000_000.0) for i in range(20)]
    replays = [b.first_use(ISS, f"jti-{i}", 2_000_000.0) for i in range(20)]
    assert firsts == [True] * 20
    assert replays == [False] * 20
    assert b.first_use("https://other-ehr.example.org", "jti-0", 2_000_000.0)  # per issuer


def test_racing_processes_one_winner(db_url: str) -> None:
    stores = [store(db_url) for _ in range(4)]
    for s in stores:
        s.first_use(ISS, "warm-up", 2_000_000.0)  # schema and pool ready before the race
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def race(s: SqlJtiStore) -> None:
        barrier.wait()
        results.append(s.first_use(ISS, "contested", 2_000_000.0))

    threads = [threading.Thread(target=race, args=(stores[i % 4],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False] * 7 + [True]


def test_expired_entries_are_purged_and_their_id_may_be_reused(db_url: str) -> None:
    clock = Clock()
    s = store(db_url, clock)
    assert s.first_use(ISS, "old", clock.now + 10)
    assert not s.first_use(ISS, "old", clock.now + 10)
    clock.now += 11
    assert s.first_use(ISS, "old", clock.now + 10)  # the earlier token is past its expiry
    assert s.first_use(ISS, "other", clock.now + 5)
    clock.now += 6
    assert s.purge() == 1  # "other" expired; "old" (renewed) still live
    assert [e[1] for e in s.live_entries()] == ["old"]


def use(guard: ReplayGuard, iss: str, jti: str, expires_at: float) -> bool:
    return asyncio.run(guard.first_use(iss, jti, expires_at))


def _guard_with_dead_shared(db_url: str, tmp_path: Path) -> tuple[ReplayGuard, Engine]:
    live = engine(db_url)
    shared = SqlJtiStore(dead_engine(db_url, tmp_path))
    _ENGINES.append(shared.engine)
    local = SqlJtiStore(engine(f"sqlite:///{tmp_path / 'local.sqlite3'}"), migrate=False)
    return ReplayGuard(shared, local), live


def test_falls_back_to_the_node_store_and_reconciles(db_url: str, tmp_path: Path) -> None:
    other_node = store(db_url)
    guard, live = _guard_with_dead_shared(db_url, tmp_path)
    assert use(guard, ISS, "during-outage", 2e9)
    assert use(guard, ISS, "only-here", 2e9)
    assert not use(guard, ISS, "during-outage", 2e9)  # replay on this node: refused
    assert guard.status.degraded
    # Meanwhile the same token id was used on another node (which could reach the store).
    assert other_node.first_use(ISS, "during-outage", 2e9)

    guard.shared.engine = live  # the shared store answers again
    guard._retry_at = 0.0
    assert use(guard, ISS, "after", 2e9)
    status = guard.status
    assert not status.degraded
    assert status.conflicts == 1  # logged as a possible replay accepted during the outage
    # The outage's token ids are in the shared store now: refused on every node.
    assert not other_node.first_use(ISS, "during-outage", 2e9)
    assert not other_node.first_use(ISS, "only-here", 2e9)
    assert guard.local is not None and guard.local.live_entries() == []


def test_without_a_fallback_the_check_fails_visibly(db_url: str, tmp_path: Path) -> None:
    guard = ReplayGuard(SqlJtiStore(dead_engine(db_url, tmp_path)), None)
    with pytest.raises(ReplayStoreUnavailable):
        use(guard, ISS, "x", 2e9)


@contextmanager
def _client(url: str, key: SigningKey, **extra: object) -> Iterator[TestClient]:
    settings = make_settings(
        trusted_issuers=[TrustedIssuer(iss=ISS, jwks={"keys": [key.jwk()]})],
        database_url=url,
        **extra,
    )
    app = build_app(settings)
    try:
        with TestClient(app, base_url=BASE) as client:
            yield client
    finally:
        app.state.security_engine.dispose()


def test_replays_refused_across_two_app_instances(db_url: str, es384: SigningKey) -> None:
    minter = Minter(es384)
    tokens = [minter.token() for _ in range(20)]
    with _client(db_url, es384) as a, _client(db_url, es384) as b:
        first = [a.post(SERVICE_PATH, json={}, headers=bearer(t)).status_code for t in tokens]
        again = [b.post(SERVICE_PATH, json={}, headers=bearer(t)).status_code for t in tokens]
    assert first == [200] * 20
    assert again == [401] * 20


@pytest.mark.parametrize("mode", ["refuse", "local"])
def test_postgresql_down(mode: str, tmp_path: Path, es384: SigningKey) -> None:
    """refuse: 503 with an OperationOutcome, never an unchecked 200; local: the node's file
    checks the token ids meanwhile (a replay is still refused)."""
    dead = f"postgresql://kap:kap@127.0.0.1:{closed_port()}/kap"
    minter = Minter(es384)
    token = minter.token()
    with _client(
        dead, es384, replay_when_store_down=mode, rate_limit_requests=0, spool_dir=tmp_path
    ) as client:
        first = client.post(SERVICE_PATH, json={}, headers=bearer(token))
        again = client.post(SERVICE_PATH, json={}, headers=bearer(token))
    if mode == "local":
        assert (first.status_code, again.status_code) == (200, 401)
        return
    assert first.status_code == 503
    assert first.headers["Retry-After"]
    body = first.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["details"]["coding"][0]["code"] == "CDS-1503"
