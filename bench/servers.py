"""Start, watch and stop the servers under test: ``kap-cds serve`` and the floor app.

Each server is a subprocess on 127.0.0.1 and a free port, with its audit store and spool in a
temporary directory. Start-up time is process start -> first 200 from ``/readyz``. Peak RSS is
``VmHWM`` from ``/proc/<pid>/status`` of each uvicorn worker process (the supervisor itself is
not a worker when there are several).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
METRIC = re.compile(
    r'^kap_cds_service_latency_seconds_(sum|count)\{service="(?P<service>[^"]+)"\} (?P<v>\S+)$',
    re.MULTILINE,
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(kind: str, port: int, workers: int) -> list[str]:
    if kind == "kap":
        kap_cds = VENV_BIN / "kap-cds"
        program = [str(kap_cds)] if kap_cds.exists() else [sys.executable, "-m", "cds.cli"]
        return [
            *program,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    return [sys.executable, "-m", "bench.floor", "--port", str(port), "--workers", str(workers)]


def server_env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_CDS_")}
    env |= {
        "KAP_CDS_DATABASE_URL": f"sqlite:///{state_dir / 'audit.sqlite3'}",
        "KAP_CDS_SPOOL_DIR": str(state_dir / "spool"),
        "KAP_CDS_STATE_DIR": str(state_dir),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    }
    return env


@dataclass
class Server:
    kind: str
    workers: int
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_s: float = 0.0
    ready_body: dict[str, object] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        if self.workers <= 1:
            return [self.process.pid]
        return [pid for pid in child_pids(self.process.pid) if _is_spawned_worker(pid)]

    def memory_mb(self) -> dict[str, dict[str, float | None]]:
        """``{pid: {"peak_rss_mb": VmHWM, "rss_mb": VmRSS}}`` for each worker."""
        return {
            str(pid): {
                "peak_rss_mb": proc_status_mb(pid, "VmHWM"),
                "rss_mb": proc_status_mb(pid, "VmRSS"),
            }
            for pid in self.worker_pids()
        }

    def cpu_seconds(self) -> float:
        """CPU time used so far by the workers (and a supervisor, if any)."""
        return cpu_seconds(sorted({self.process.pid, *self.worker_pids()}))

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def start_server(kind: str, workers: int, state_dir: Path, timeout: float = 60.0) -> Server:
    """Start a server and wait until ``/readyz`` answers 200 (and every worker is up)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = state_dir / f"{kind}-{workers}w.log"
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            server_command(kind, port, workers),
            cwd=REPO_ROOT,
            env=server_env(state_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(kind, workers, port, process, log_path)
    try:
        server.ready_body = _wait_ready(server, started, timeout)
        server.startup_s = round(time.perf_counter() - started, 3)
        _wait_workers(server, timeout=10.0)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: Server, started: float, timeout: float) -> dict[str, object]:
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.perf_counter() - started < timeout:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.kind} server exited; see {server.log_path}")
            try:
                response = client.get(f"{server.base_url}/readyz")
                if response.status_code == 200:
                    body: dict[str, object] = response.json()
                    return body
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    raise TimeoutError(f"{server.kind} server not ready after {timeout} s; see {server.log_path}")


def _wait_workers(server: Server, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while len(server.worker_pids()) < server.workers and time.perf_counter() < deadline:
        time.sleep(0.05)


def server_latency(server: Server, service: str = "kap-order-sign") -> tuple[float, int] | None:
    """(sum of seconds, count) of the service's latency histogram from ``/metrics``; None
    when the server has no such metric (the floor). With several workers each scrape reaches
    one worker only, so callers use it with one worker."""
    try:
        text = httpx.get(f"{server.base_url}/metrics", timeout=5.0, trust_env=False).text
    except httpx.HTTPError:
        return None
    values = {
        m.group(1): float(m.group("v"))
        for m in METRIC.finditer(text)
        if m.group("service") == service
    }
    if "sum" not in values or "count" not in values:
        return None
    return values["sum"], int(values["count"])


# ---- /proc readers ---------------------------------------------------------------------------


def child_pids(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return children


def _is_spawned_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"spawn_main" in cmdline or b"multiprocessing-fork" in cmdline


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (``/proc/<pid>/stat``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)"; utime, stime are 14, 15
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def proc_status_mb(pid: int, field_name: str) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 1024, 1) if match else None
