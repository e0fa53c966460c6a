"""A real `kap-cds serve` process on a free loopback port, for tests that need real HTTP.

Shared by the round-trip, governance (headless Chromium) and soak tests; importable from any
test module because tests/ holds the suite's conftest.py (pytest puts it on sys.path).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log: str = ""  # everything the server printed, filled in when it has stopped

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1])

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


@contextmanager
def live_server(
    state_dir: Path, database_url: str | None = None, settings: dict[str, str] | None = None
) -> Iterator[LiveServer]:
    """`kap-cds serve` in open mode (unless ``settings``, extra ``KAP_CDS_*`` variables, say
    otherwise), its audit store and spool under ``state_dir``. Fails the test if the server does
    not come up, or does not stop cleanly (a crash in the engine, a traceback) when the test is
    done."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "KAP_CDS_DATABASE_URL": database_url or f"sqlite:///{state_dir / 'audit.sqlite3'}",
        "KAP_CDS_SPOOL_DIR": str(state_dir / "spool"),
    }
    env.pop("KAP_CDS_TRUSTED_ISSUERS", None)
    env |= settings or {}
    process = subprocess.Popen(
        [sys.executable, "-m", "cds", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=state_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process)
    try:
        _wait_until_up(server)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        server.log = output.decode(errors="replace")
    # uvicorn exits 0 on SIGTERM; anything else (a crash in the engine, say) fails loudly.
    assert process.returncode in (0, -signal.SIGTERM), f"server died:\n{server.log[-3000:]}"
    assert "Traceback" not in server.log, server.log[-3000:]


def _wait_until_up(server: LiveServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            output = server.process.stdout.read().decode() if server.process.stdout else ""
            pytest.fail(f"server exited with {server.process.returncode}:\n{output}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"server did not start within {START_TIMEOUT_SECONDS} s")
