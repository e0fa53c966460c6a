"""Soak: a real ``kap-cds serve`` process on loopback under a steady mixed load (non-KAP orders,
KAP order-sign, patient-view, feedback, a few invalid calls). No 5xx, and memory (VmRSS) and open
file descriptors of the server stay flat (the durable engine deletes its session state after each
evaluation: a steady RSS is what we can observe).

10 s in the normal run; 90 s under ``-m slow`` (``test_soak_long``; not picked by ``-k fuzz``).
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fhir_strategies import BASES
from live_server import LiveServer, live_server
from test_third_party_services import AMOXICILLIN

RATE_PER_SECOND = 40
RSS_MARGIN_KB = 30_000  # allocator and cache warm-up noise; a leak of ~1 KB/request exceeds it
FD_MARGIN = 8


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path) as running:
        yield running


def _non_kap() -> dict[str, Any]:
    request = copy.deepcopy(BASES["order-sign-eligible"])
    request["context"]["draftOrders"]["entry"] = [{"resource": AMOXICILLIN}]
    return request


def _feedback(i: int) -> dict[str, Any]:
    return {
        "feedback": [
            {
                "card": f"soak-card-{i}",
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"system": "urn:kap-cds:override", "code": "OR-BENEFIT"}
                },
                "outcomeTimestamp": datetime.now(UTC).isoformat(),
            }
        ]
    }


# (path, body, expected status) in a fixed rotation: mostly real work, a few invalid calls.
def mix() -> list[tuple[str, bytes, int]]:
    sign = orjson.dumps(BASES["order-sign-eligible"])
    view = orjson.dumps(BASES["patient-view"])
    esk = orjson.dumps(BASES["order-select-esketamine"])
    non_kap = orjson.dumps(_non_kap())
    wrong_hook = orjson.dumps({**BASES["patient-view"], "hook": "order-sign"})
    return [
        ("/cds-services/kap-order-sign", non_kap, 200),
        ("/cds-services/kap-order-sign", sign, 200),
        ("/cds-services/kap-patient-view", view, 200),
        ("/cds-services/kap-order-sign", non_kap, 200),
        ("/cds-services/kap-order-select", esk, 200),
        ("/cds-services/kap-order-sign", sign, 200),
        ("/cds-services/kap-order-sign/feedback", b"", 200),  # body filled per request
        ("/cds-services/kap-order-sign", b'{"hook": ', 400),
        ("/cds-services/kap-patient-view", wrong_hook, 400),
        ("/cds-services/no-such-service", sign, 404),
    ]


def drive(server: LiveServer, seconds: float) -> Counter[str]:
    """Requests at a steady RATE_PER_SECOND for ``seconds``; counts outcomes by status."""
    rotation = mix()
    outcomes: Counter[str] = Counter()
    interval = 1 / RATE_PER_SECOND
    started = time.monotonic()
    with httpx.Client(
        base_url=server.url, timeout=10, headers={"Content-Type": "application/json"}
    ) as client:
        i = 0
        while time.monotonic() - started < seconds:
            path, body, expected = rotation[i % len(rotation)]
            if path.endswith("/feedback"):
                body = orjson.dumps(_feedback(i))
            response = client.post(path, content=body)
            if response.status_code != expected:
                outcomes[f"unexpected {response.status_code} on {path}"] += 1
            outcomes[str(response.status_code)] += 1
            i += 1
            time.sleep(max(0.0, started + i * interval - time.monotonic()))
    return outcomes


def soak(server: LiveServer, seconds: float) -> None:
    drive(server, 3)  # warm-up: imports, caches, connection pools, audit writer
    rss_before, fds_before = server.rss_kb(), server.open_fds()
    outcomes = drive(server, seconds)
    rss_after, fds_after = server.rss_kb(), server.open_fds()
    total = sum(v for k, v in outcomes.items() if k.isdigit())
    print(
        f"\nsoak {seconds:.0f}s: {total} requests ({total / seconds:.0f}/s) {dict(outcomes)}; "
        f"RSS {rss_before} -> {rss_after} kB; fds {fds_before} -> {fds_after}"
    )
    assert not [k for k in outcomes if not k.isdigit()], dict(outcomes)
    assert not [k for k in outcomes if k.isdigit() and k.startswith("5")], dict(outcomes)
    assert rss_after - rss_before < RSS_MARGIN_KB, f"RSS grew {rss_before} -> {rss_after} kB"
    assert fds_after - fds_before <= FD_MARGIN, f"open fds grew {fds_before} -> {fds_after}"
    readiness = httpx.get(f"{server.url}/readyz", timeout=5)
    assert readiness.status_code == 200 and readiness.json()["audit"] == "ok", readiness.text


def test_soak_short(server: LiveServer) -> None:
    soak(server, 10)


@pytest.mark.slow
def test_soak_long(server: LiveServer) -> None:
    soak(server, 90)
