"""``GET /governance`` from a real uvicorn process, rendered by headless Chromium: the DOM holds
the rules and the figures, the filter script ran under the page's CSP, and a screenshot is saved.

Skips when Chromium is not installed, unless KAP_CDS_REQUIRE_CHROMIUM=1 (CI: scripts/ci/chromium.sh
installs it), which turns the skip into a failure. KAP_CDS_SCREENSHOT_DIR keeps the screenshot.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from auditseed import seed
from live_server import live_server

from cds.audit import open_store
from cds.config import Settings

CHROMIUM_TIMEOUT_SECONDS = 90


def chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found:
        return found
    if os.environ.get("KAP_CDS_REQUIRE_CHROMIUM") == "1":
        pytest.fail(
            "KAP_CDS_REQUIRE_CHROMIUM=1 but chromium is not installed (run scripts/ci/chromium.sh)"
        )
    pytest.skip(
        "headless Chromium test skipped: chromium is not installed "
        "(apt-get install chromium, or scripts/ci/chromium.sh)"
    )


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    database_url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    store = open_store(
        Settings(
            _env_file=None,
            database_url=database_url,  # type: ignore[call-arg]
            spool_dir=tmp_path / "seed-spool",
        )
    )
    try:
        seed(store)  # KAP-CI-001 fired and was accepted; KAP-CI-901 is not in this rule set
    finally:
        store.close()
    with live_server(tmp_path, database_url) as server:
        yield server.url


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=CHROMIUM_TIMEOUT_SECONDS
    )


def test_governance_page_in_headless_chromium(server_url: str, tmp_path: Path) -> None:
    binary = chromium()
    url = f"{server_url}/governance"
    dom = _chromium(
        binary, tmp_path / "profile-dom", "--virtual-time-budget=3000", "--dump-dom", url
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "KAP rule governance" in html
    assert 'id="KAP-CI-001"' in html and 'id="KAP-DATA-001"' in html
    assert "Behaviour in practice" in html
    assert "<td>1</td><td>1</td><td>0</td>" in html  # KAP-CI-001: fired once, accepted
    # The filter script ran (its CSP hash matches): it un-hides the filter box.
    assert '<div class="filter">' in html, "the inline filter script did not run"

    screenshot = tmp_path / "governance.png"
    shot = _chromium(
        binary,
        tmp_path / "profile-shot",
        f"--screenshot={screenshot}",
        "--window-size=1280,2000",
        "--hide-scrollbars",
        url,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one
    keep = os.environ.get("KAP_CDS_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / "governance.png")
