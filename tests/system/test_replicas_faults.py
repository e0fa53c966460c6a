"""Production topology under faults, with real parts: two kap-cds replicas (one with two workers)
behind Debian's haproxy, one throwaway PostgreSQL, JWT on; all on 127.0.0.1, bounded in time.

- No replay is accepted, across replicas and across workers.
- kill -9 of one replica under load, and a PostgreSQL outage, lose no answered decision: every
  request answered 200 is in the audit store afterwards.
- A full spool disk while PostgreSQL is down answers 503 and ``/readyz`` says not ready: no 200
  for a decision that is not kept. The full disk is a 256 KiB tmpfs mounted for the test when the
  sandbox allows ``mount`` (root); otherwise the replica runs under RLIMIT_FSIZE = 256 KiB, which
  fails its writes past that size with EFBIG the way a full disk fails them with ENOSPC.

The figures (answered, kept, replays accepted, peak RSS) are printed at the end (``-s``).
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from live_server import REPO_ROOT, free_port
from sqlalchemy import Engine, create_engine, text
from topology import (
    Minter,
    Postgres,
    Replica,
    haproxy,
    postgres_cluster,
    replica_env,
    require,
    tiny_filesystem,
)

PATH = "/cds-services/kap-order-sign"
REQUEST = orjson.loads(
    (REPO_ROOT / "fhir_examples" / "requests" / "order-sign-ketamine-iv.json").read_bytes()
)
FIGURES: dict[str, dict[str, Any]] = {}
FLUSH_TIMEOUT_SECONDS = 90


@dataclass
class Topology:
    pg: Postgres
    a: Replica
    b: Replica
    lb: str
    minter: Minter
    engine: Engine
    work: Path

    @property
    def aud(self) -> str:
        return self.lb + PATH  # KAP_CDS_PUBLIC_BASE_URL is the load balancer

    def call(self, client: httpx.Client, base: str, token: str | None = None) -> tuple[str, int]:
        body = copy.deepcopy(REQUEST)
        body["hookInstance"] = instance = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {token or self.minter.token(self.aud)}"}
        try:
            status = client.post(base + PATH, json=body, headers=headers).status_code
        except httpx.TransportError:
            status = 0  # connection cut (the replica was killed): not an answer
        return instance, status

    def kept(self) -> set[str]:
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(text("SELECT hook_instance FROM audit_evaluation")).scalars()
                return set(rows)
        except Exception:  # noqa: BLE001 - PostgreSQL may be down at this moment
            return set()

    def wait_kept(self, answered: set[str]) -> set[str]:
        deadline = time.monotonic() + FLUSH_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            missing = answered - self.kept()
            if not missing:
                return missing
            time.sleep(0.5)
        return answered - self.kept()

    def sample_rss(self) -> None:
        self.a.sample_rss()
        self.b.sample_rss()


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    require("haproxy", "KAP_CDS_REQUIRE_HAPROXY")
    work = tmp_path_factory.mktemp("fault")
    with postgres_cluster() as pg:
        minter = Minter()
        lb_port = free_port()
        env = replica_env(pg, minter, f"http://127.0.0.1:{lb_port}")
        a = Replica("a", free_port(), work / "a" / "spool", env, workers=2)
        b = Replica("b", free_port(), work / "b" / "spool", env)
        for replica in (a, b):
            replica.spool_dir.parent.mkdir(parents=True)
            replica.start()
        engine = create_engine(pg.url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with haproxy(lb_port, [a, b], work) as lb:
                yield Topology(pg, a, b, lb, minter, engine, work)
        finally:
            for replica in (a, b):
                replica.stop()
            engine.dispose()
            FIGURES["peak_rss_kb"] = {"a (2 workers)": a.peak_rss_kb, "b": b.peak_rss_kb}
            print(
                "\nfault test figures:", orjson.dumps(FIGURES, option=orjson.OPT_INDENT_2).decode()
            )
            for replica in (a, b):
                assert "Traceback" not in replica.log(), replica.log()[-3000:]


def load(topo: Topology, seconds: float, threads: int = 4) -> list[tuple[str, int]]:
    """Calls through the load balancer from ``threads`` clients for ``seconds``."""
    results: list[tuple[str, int]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client_loop() -> None:
        with httpx.Client(timeout=15) as client:
            while time.monotonic() < stop_at:
                outcome = topo.call(client, topo.lb)
                with lock:
                    results.append(outcome)

    workers = [threading.Thread(target=client_loop) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 60)
    return results


def answered(results: list[tuple[str, int]]) -> set[str]:
    return {instance for instance, status in results if status == 200}


def test_no_replay_is_accepted_across_replicas_or_workers(topology: Topology) -> None:
    topo = topology
    accepted_twice = 0
    with httpx.Client(timeout=15) as client:
        for _ in range(20):  # once to A, once to B
            token = topo.minter.token(topo.aud)
            first, second = (
                topo.call(client, topo.a.url, token),
                topo.call(client, topo.b.url, token),
            )
            assert first[1] == 200
            accepted_twice += second[1] == 200
        for _ in range(20):  # twice to A: two workers behind one socket
            token = topo.minter.token(topo.aud)
            statuses = [topo.call(client, topo.a.url, token)[1] for _ in range(2)]
            assert statuses[0] == 200
            accepted_twice += statuses[1] == 200
        for _ in range(20):  # twice through haproxy (round robin: usually one per replica)
            token = topo.minter.token(topo.aud)
            statuses = [topo.call(client, topo.lb, token)[1] for _ in range(2)]
            assert statuses[0] == 200
            accepted_twice += statuses[1] == 200
    FIGURES["replay"] = {"tokens": 60, "replays_sent": 60, "replays_accepted": accepted_twice}
    assert accepted_twice == 0


def test_kill9_of_a_replica_under_load_loses_no_answered_decision(topology: Topology) -> None:
    topo = topology
    results: list[tuple[str, int]] = []
    loader = threading.Thread(target=lambda: results.extend(load(topo, 8.0)))
    loader.start()
    time.sleep(2.5)
    topo.sample_rss()
    topo.b.kill9()  # whatever it answered 200 is in its spool, synced
    time.sleep(2.0)
    topo.b.start()  # same spool directory: it claims and replays what the dead process left
    loader.join(120)
    ok = answered(results)
    missing = topo.wait_kept(ok)
    topo.sample_rss()
    FIGURES["kill9"] = {
        "requests": len(results),
        "answered_200": len(ok),
        "statuses": {str(k): v for k, v in Counter(s for _, s in results).items()},
        "kept": len(ok) - len(missing),
        "lost": len(missing),
    }
    assert len(ok) > 20
    assert not missing


def test_postgresql_outage_loses_no_answered_decision(topology: Topology) -> None:
    topo = topology
    topo.pg.crash()
    results = load(topo, 5.0)
    ok = answered(results)
    topo.sample_rss()
    topo.pg.start()
    missing = topo.wait_kept(ok)
    FIGURES["postgresql_outage"] = {
        "requests": len(results),
        "answered_200": len(ok),
        "statuses": {str(k): v for k, v in Counter(s for _, s in results).items()},
        "kept": len(ok) - len(missing),
        "lost": len(missing),
    }
    assert len(ok) > 10, "the replicas keep answering from their spools while PostgreSQL is down"
    assert not missing


def test_full_spool_disk_answers_503_not_silent_loss(topology: Topology) -> None:
    topo = topology
    topo.b.stop()
    spool = topo.work / "b-full" / "spool"
    with tiny_filesystem(spool) as mounted:
        b = Replica("b-full", topo.b.port, spool, topo.b.env)
        if not mounted:
            b.fsize_limit = 256 * 1024
        b.start()
        try:
            topo.pg.crash()
            results: list[tuple[str, int]] = []
            ready_when_refusing, why = None, None
            with httpx.Client(timeout=15) as client:
                for _ in range(2000):
                    results.append(topo.call(client, b.url))
                    if results[-1][1] == 503:
                        readyz = client.get(b.url + "/readyz")
                        ready_when_refusing = readyz.status_code
                        why = readyz.json()["issue"][0]["details"]["text"]
                        break
            ok = answered(results)
            b.sample_rss()
            topo.pg.start()
            missing = topo.wait_kept(ok)
        finally:
            b.stop()
            assert "Traceback" not in b.log(), b.log()[-3000:]
    topo.b.start()  # the original replica back for whatever runs next
    FIGURES["spool_disk_full"] = {
        "full_disk": "256 KiB tmpfs" if mounted else "RLIMIT_FSIZE 256 KiB",
        "requests": len(results),
        "answered_200": len(ok),
        "statuses": {str(k): v for k, v in Counter(s for _, s in results).items()},
        "readyz_when_refusing": ready_when_refusing,
        "readyz_reason": why,
        "kept": len(ok) - len(missing),
        "lost": len(missing),
    }
    assert results[-1][1] == 503, "a full spool with the database down must answer 503"
    assert ready_when_refusing == 503
    assert ok, "records were spooled until the disk filled"
    assert not missing
