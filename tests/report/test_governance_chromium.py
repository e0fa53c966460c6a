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
from artifacts import artifact_dir
from auditseed import seed_analytics
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
        seed_analytics(store)  # KAP-CI-001 answered twice, KAP-CI-010 in shadow, KAP-CI-901 gone
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


def _dom(binary: str, profile: Path, url: str) -> str:
    dom = _chromium(binary, profile, "--virtual-time-budget=3000", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    return dom.stdout


def _screenshot(binary: str, profile: Path, url: str, target: Path) -> None:
    shot = _chromium(
        binary,
        profile,
        f"--screenshot={target}",
        "--window-size=1280,2400",
        "--hide-scrollbars",
        url,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert target.stat().st_size > 20_000  # a rendered page, not a blank one


def test_governance_pages_in_headless_chromium(server_url: str, tmp_path: Path) -> None:
    binary = chromium()
    html = _dom(binary, tmp_path / "profile-dom", f"{server_url}/governance")
    assert "KAP rule governance" in html
    # The index links each rule to its own page instead of carrying every rule's section.
    assert 'href="/governance/rules/KAP-CI-001"' in html
    assert 'id="KAP-DATA-001"' not in html and len(html) < 200_000
    assert "Behaviour in practice" in html
    # Charts are SVG images rendered server-side, allowed by the CSP as data: images.
    assert html.count('src="data:image/svg+xml;base64,') >= 4
    assert "Cards per KAP request by service" in html
    assert "Shadow rules (evaluated, never shown to the EHR)" in html
    assert "reasons not offered by the card" in html
    # The filter script ran (its CSP hash matches): it un-hides the filter box.
    assert '<div class="filter">' in html, "the inline filter script did not run"

    rule = _dom(binary, tmp_path / "profile-rule", f"{server_url}/governance/rules/KAP-CI-001")
    assert 'id="KAP-CI-001"' in rule and "Version history" in rule
    assert 'alt="KAP-CI-001: fired 3, accepted 2, overridden 1."' in rule
    assert rule.count('src="data:image/svg+xml;base64,') >= 2

    keep = artifact_dir("governance")
    _screenshot(binary, tmp_path / "profile-shot", f"{server_url}/governance", keep / "index.png")
    _screenshot(
        binary,
        tmp_path / "profile-shot-rule",
        f"{server_url}/governance/rules/KAP-CI-001",
        keep / "rule-KAP-CI-001.png",
    )
