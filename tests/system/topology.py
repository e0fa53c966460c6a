"""Real parts on loopback for the fault test: a throwaway PostgreSQL cluster we can stop and
start, kap-cds replicas (``kap-cds serve`` processes, JWT on), Debian's haproxy in front, and a
JWT minter the replicas trust. Everything binds 127.0.0.1 on free ports and is torn down (and
killed if need be) when its context manager exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from live_server import REPO_ROOT, free_port

ISS = "https://ehr.fault-test.example.org"
KID = "fault-test-1"
START_TIMEOUT_SECONDS = 60


def require(tool: str, env: str) -> str:
    """The tool's path; skip without it, fail when ``env``=1 (CI must run this test)."""
    # PostgreSQL's server tools live in /usr/lib/postgresql/<version>/bin on Debian.
    versioned = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    found = str(versioned[-1]) if versioned else shutil.which(tool)
    if found is None and Path(f"/usr/sbin/{tool}").exists():
        found = f"/usr/sbin/{tool}"
    if found:
        return found
    message = f"{tool} not installed (scripts/ci/ installs it for CI)"
    if os.environ.get(env) == "1":
        pytest.fail(message)
    pytest.skip(message)


# --- PostgreSQL -------------------------------------------------------------------------------


@dataclass
class Postgres:
    bin_dir: Path
    data: Path
    port: int
    password: str
    as_pg: list[str]
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/kap_cds"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_pg, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data.parent}"
        self._ctl("-l", str(self.log), "-w", "-o", options, "start")

    def crash(self) -> None:
        """An outage: immediate shutdown, connections cut, no checkpoint."""
        self._ctl("-m", "immediate", "-w", "stop")


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    initdb = Path(require("initdb", "KAP_CDS_REQUIRE_POSTGRES"))
    as_pg = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="kap-cds-fault-pg-"))
    password = uuid.uuid4().hex
    (root / "pw").write_text(password + "\n")
    if as_pg:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")
    pg = Postgres(initdb.parent, root / "data", free_port(), password, as_pg, root / "server.log")
    try:
        subprocess.run(
            [*as_pg, str(initdb), "-D", str(pg.data), "-U", "postgres", f"--pwfile={root / 'pw'}"]
            + ["--auth=scram-sha-256", "-E", "UTF8"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )
        pg.start()
        subprocess.run(
            [str(pg.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(pg.port)]
            + ["-U", "postgres", "kap_cds"],
            env={**os.environ, "PGPASSWORD": password},
            check=True,
            timeout=60,
        )
        yield pg
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            pg._ctl("-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


# --- JWT --------------------------------------------------------------------------------------


@dataclass
class Minter:
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": KID, "alg": "ES384", "use": "sig"}]}

    def token(self, aud: str) -> str:
        now = int(time.time())
        claims = {"iss": ISS, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        claims["sub"] = "fault-test-client"
        return jwt.encode(claims, self.key, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})


# --- kap-cds replicas -------------------------------------------------------------------------


@dataclass
class Replica:
    name: str
    port: int
    spool_dir: Path
    env: dict[str, str]
    workers: int = 1
    fsize_limit: int | None = None  # RLIMIT_FSIZE for the disk-full test without a mount
    process: subprocess.Popen[bytes] | None = None
    peak_rss_kb: int = 0

    @property
    def log_path(self) -> Path:
        return self.spool_dir.parent / f"{self.name}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [sys.executable, "-m", "cds", "serve", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--workers", str(self.workers)]
        env = {
            **self.env,
            "KAP_CDS_SPOOL_DIR": str(self.spool_dir),
            "KAP_CDS_STATE_DIR": str(self.spool_dir.parent),  # the spool is created inside it
        }
        # A file, not a pipe: a replica logging through an outage must never block on a full pipe.
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=self.spool_dir.parent,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill -9 takes the workers too
                preexec_fn=self._limits if self.fsize_limit else None,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"replica {self.name} exited:\n{self.log()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        pytest.fail(f"replica {self.name} not ready in {START_TIMEOUT_SECONDS} s")

    def _limits(self) -> None:
        import resource

        assert self.fsize_limit is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.fsize_limit, self.fsize_limit))

    def sample_rss(self) -> int:
        """Peak RSS (VmHWM) over the replica's processes so far, in KiB."""
        if self.process is None:
            return self.peak_rss_kb
        for pid in _group_pids(self.process.pid):
            with contextlib.suppress(OSError, StopIteration, ValueError):
                status = Path(f"/proc/{pid}/status").read_text()
                line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
                self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))
        return self.peak_rss_kb

    def kill9(self) -> None:
        assert self.process is not None
        self.sample_rss()
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.sample_rss()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 of /proc/pid/stat: process group
                pids.append(int(stat.parent.name))
    return pids


def replica_env(pg: Postgres, minter: Minter, public_base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_CDS_")}
    return {
        **env,
        "PYTHONPATH": str(REPO_ROOT),
        "KAP_CDS_DATABASE_URL": pg.url,
        "KAP_CDS_TRUSTED_ISSUERS": json.dumps([{"iss": ISS, "jwks": minter.jwks()}]),
        "KAP_CDS_PUBLIC_BASE_URL": public_base_url,
        "KAP_CDS_FACILITY_TIMEZONE": "America/New_York",  # required in JWT mode
        # The fault test sends ~1,000 calls a minute from one issuer: keep the limit out of it.
        "KAP_CDS_RATE_LIMIT_REQUESTS": "100000",
    }


# --- haproxy ----------------------------------------------------------------------------------

HAPROXY_CFG = """
global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
frontend kap_cds
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 2
{servers}
"""


@contextlib.contextmanager
def haproxy(port: int, replicas: list[Replica], work: Path) -> Iterator[str]:
    binary = require("haproxy", "KAP_CDS_REQUIRE_HAPROXY")
    servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port} check" for r in replicas)
    cfg = work / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(port=port, servers=servers))
    with (work / "haproxy.log").open("ab") as log:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            pytest.fail("haproxy did not come up")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# --- a full disk ------------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str = "256k") -> Iterator[bool]:
    """A ``size`` tmpfs at ``path`` when this process may mount (root in a sandbox that allows
    it); yields False otherwise, and the caller limits the replica with RLIMIT_FSIZE instead."""
    path.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    mounted = False
    if mount and os.getuid() == 0:
        result = subprocess.run(
            [mount, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            timeout=30,
        )
        mounted = result.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
