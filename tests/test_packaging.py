"""A wheel that runs: built from the repository, installed (not editable) into a fresh venv,
``kap-cds`` finds its bundled rule set and fixtures, and keeps its state out of site-packages.

The fresh venv gets the wheel only (``--no-deps``); the dependencies come from the test's own
environment through a ``.pth`` file (a path it adds is not a site directory, so the editable
install's finder there is not loaded). Building the wheel needs setuptools>=77, which pip fetches
for its isolated build the ordinary way (from its cache when it has one).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("cds", "rules", "fhir_examples", "pyproject.toml", "setup.py", "README.md", "LICENSE")
START_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a fresh venv with the kap-cds wheel installed."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: the build writes build/ and *.egg-info into its tree
    for name in SOURCES:
        copy = shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copy2
        copy(REPO_ROOT / name, source / name, **_ignore_caches(REPO_ROOT / name))
    dist = root / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist, source])
    (wheel,) = dist.glob("kap_cds-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel])
    site = Path(
        _output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "kap_cds_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    return venv / "bin"


def test_the_installed_package_is_the_wheel_not_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    # Run outside the checkout: ``python -c`` puts the working directory first on sys.path.
    where = _output([installed / "python", "-c", "import cds; print(cds.__file__)"], tmp_path)
    assert where.startswith(str(installed.parent)), where


def test_rules_lint_and_test_use_the_bundled_rule_set(installed: Path, tmp_path: Path) -> None:
    lint = _output([installed / "kap-cds", "rules", "lint"], cwd=tmp_path)
    assert " rules (" in lint and "digest" in lint, lint
    expected = json.loads((REPO_ROOT / "rules" / "CATALOG.json").read_text())
    assert expected["ruleset_digest"] in lint  # the same rule set as the repository's rules/
    cases = _output([installed / "kap-cds", "rules", "test"], cwd=tmp_path)
    assert cases.rstrip().endswith("0 failed"), cases[-2000:]


def test_serve_from_the_wheel_is_ready_and_keeps_state_in_the_working_directory(
    installed: Path, tmp_path: Path
) -> None:
    for process, url in _serving(installed, tmp_path):
        ready = httpx.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        body = (REPO_ROOT / "fhir_examples" / "requests" / "uncontrolled-bp.json").read_bytes()
        answer = httpx.post(
            f"{url}/cds-services/kap-order-sign",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert "KAP-CI-011" in {c["source"]["topic"]["code"] for c in answer.json()["cards"]}
        assert process.poll() is None
    assert (tmp_path / "var" / "audit.sqlite3").is_file()
    site_packages = installed.parent / "lib"
    assert not list(site_packages.rglob("audit.sqlite3")), "state written into the venv"


def _serving(bin_dir: Path, cwd: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP_CDS_")}
    env.pop("PYTHONPATH", None)
    command = [bin_dir / "kap-cds", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(process, url)
        yield process, url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert "Traceback" not in output.decode(errors="replace")


def _wait_until_up(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"kap-cds serve exited with {process.returncode}:\n{output[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"kap-cds serve did not start within {START_TIMEOUT_SECONDS} s")


def _ignore_caches(path: Path) -> dict[str, object]:
    if not path.is_dir():
        return {}
    return {"ignore": shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")}


def _run(command: list[object], cwd: Path | None = None) -> None:
    _output(command, cwd)


def _output(command: list[object], cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout.strip()
