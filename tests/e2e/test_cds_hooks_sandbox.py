"""The HL7 CDS Hooks sandbox (the EHR simulator integrators use) in headless Chromium, against a
real ``kap-cds serve`` with JWT on (the sandbox's public key set, pinned inline) and CORS on.

Everything is on loopback: the sandbox's static build, a small FHIR server for its patient and
kap-cds; Chromium resolves no other name. The sandbox fills the prefetch itself and names its
http FHIR server; its draft order has ``category`` as one object. The test asserts what a
clinician sees in the rendered page (an error renders as "All clear!", so a 200 proves nothing),
and that accepting a suggestion and dismissing with an override reason reach the audit trail.

Screenshots: ``cds-hooks-sandbox/`` under the test artifacts folder (``KAP_CDS_ARTIFACTS_DIR``
in CI, else ``test-artifacts/``; tests/artifacts.py). Needs Chromium
(fails when KAP_CDS_REQUIRE_CHROMIUM=1, as in CI, skips otherwise) and the sandbox build in
``../shared/clients/cds-hooks-sandbox`` (fails under CI when absent).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from artifacts import artifact_dir
from live_server import LiveServer, live_server
from playwright.sync_api import Browser, Page, Playwright, Response, expect, sync_playwright
from sandbox_support import FhirStore, fhir_server, serving, shifted, static_server
from shared_data import shared_path

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "fhir_examples"
EXAMPLE_T0 = datetime(2026, 11, 20, 15, tzinfo=UTC)  # the examples' planned dose time
SANDBOX_ISS = "https://sandbox.cds-hooks.org"
PATIENT_ID = "pat-eligible"
KETAMINE_50 = "ketamine 50 MG/ML Injectable Solution"  # RxNorm 238083 in the sandbox pick list
TIMEOUT_MS = 30_000  # page load to rendered cards takes 1-3.5 s here; generous for CI


def chromium_binary() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found:
        return found
    reason = "chromium is not installed (apt-get install chromium, or scripts/ci/chromium.sh)"
    if os.environ.get("KAP_CDS_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"KAP_CDS_REQUIRE_CHROMIUM=1 but {reason}")
    pytest.skip(f"CDS Hooks sandbox test skipped: {reason}")


@pytest.fixture(scope="module")
def sandbox_dir() -> Path:
    return shared_path("clients/cds-hooks-sandbox")


@pytest.fixture(scope="module")
def sandbox_url(sandbox_dir: Path) -> Iterator[str]:
    with serving(static_server(sandbox_dir)) as url:
        yield url


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-kap-cds")


@pytest.fixture(scope="module")
def kap_cds(sandbox_dir: Path, sandbox_url: str, state_dir: Path) -> Iterator[LiveServer]:
    jwks = json.loads((sandbox_dir / ".well-known" / "jwks.json").read_text())
    settings = {
        # Pinned inline: the sandbox's jku (its own published set) is then accepted, not fetched.
        "KAP_CDS_TRUSTED_ISSUERS": json.dumps([{"iss": SANDBOX_ISS, "jwks": jwks}]),
        "KAP_CDS_CORS_ORIGINS": json.dumps([sandbox_url]),
        # Required with JWT on; the charts are shifted to now in UTC.
        "KAP_CDS_FACILITY_TIMEZONE": "UTC",
    }
    with live_server(state_dir, settings=settings) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = chromium_binary()
    with sync_playwright() as playwright:
        yield _launch(playwright, binary)


def _launch(playwright: Playwright, binary: str) -> Browser:
    return playwright.chromium.launch(
        executable_path=binary,
        # Loopback only: the sandbox also calls public demo services; those names never resolve.
        args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-sandbox"],
        timeout=TIMEOUT_MS,
    )


def patient_chart(example: str, *, active_kap_order: bool = False) -> list[dict[str, Any]]:
    """The resources of a whole-patient example, moved in time so that "yesterday" relative to
    its planned dose is yesterday relative to now (the sandbox's order has no dose time)."""
    body = json.loads((EXAMPLES / "requests" / f"{example}.json").read_text())
    resources: list[dict[str, Any]] = []
    for value in body["prefetch"].values():
        if value is None:
            continue
        if value["resourceType"] == "Bundle":
            resources += [entry["resource"] for entry in value.get("entry", [])]
        else:
            resources.append(value)
    if active_kap_order:  # the chart of a patient in KAP: an active ketamine order for today
        case = json.loads(
            (EXAMPLES / "cases" / "KAP-CI-011" / "fires-patient-view.json").read_text()
        )
        resources += [r for r in case["resources"] if r["resourceType"] == "MedicationRequest"]
    moved: list[dict[str, Any]] = shifted(resources, datetime.now(UTC) - EXAMPLE_T0)
    return moved


@dataclass
class Sandbox:
    """One sandbox session in a fresh browser context, recording kap-cds's answers."""

    page: Page
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def record(self, response: Response) -> None:
        path = response.url.split("/cds-services/", 1)[-1]
        if response.request.method == "POST" and path.startswith("kap-") and "/" not in path:
            assert response.status == 200, f"{path}: HTTP {response.status} {response.text()}"
            self.answers.setdefault(path, []).append(response.json())

    def cards(self, service: str) -> list[dict[str, Any]]:
        assert service in self.answers, f"the sandbox never called {service}"
        cards: list[dict[str, Any]] = self.answers[service][-1]["cards"]
        return cards

    def card_of(self, service: str, rule_id: str) -> dict[str, Any]:
        return next(c for c in self.cards(service) if rule_of(c) == rule_id)

    def pick_ketamine(self) -> None:
        medication = self.page.locator("input[name=medication-input]")
        medication.click()
        medication.fill("Ketamine")
        self.page.get_by_text(KETAMINE_50, exact=True).first.click()

    def shows_every_card(self, service: str) -> None:
        """Each card kap-cds answered is rendered (summary visible), and "All clear!" is not."""
        cards = self.cards(service)
        assert cards, f"{service} answered no cards"
        for card in cards:
            expect(self.page.get_by_text(card["summary"], exact=True)).to_be_visible()
        expect(self.page.get_by_text("All clear!", exact=False)).to_have_count(0)

    def screenshot(self, name: str) -> None:
        path = artifact_dir("cds-hooks-sandbox") / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")


@contextmanager
def sandbox_session(
    browser: Browser, sandbox_url: str, kap: LiveServer, chart: list[dict[str, Any]], hook: str
) -> Iterator[Sandbox]:
    """The sandbox opened on ``hook``'s screen for a patient served by a loopback FHIR server
    (plain http: kap-cds evaluates the sandbox's prefetch and never contacts it)."""
    store = FhirStore(chart)
    with serving(fhir_server(store)) as fhir:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(TIMEOUT_MS)
        try:
            page = context.new_page()
            session = Sandbox(page)
            page.on("response", session.record)
            query = {
                "serviceDiscoveryURL": f"{kap.url}/cds-services",
                "fhirServiceUrl": f"{fhir}/fhir",
                "patientId": PATIENT_ID,
                "hook": hook,
                "screen": SCREENS[hook],
            }
            page.goto(f"{sandbox_url}/?{urlencode(query)}")
            expect(page.get_by_text(f"ID: {PATIENT_ID}", exact=False).first).to_be_visible()
            yield session
        finally:
            context.close()


SCREENS = {"patient-view": "patient-view", "order-select": "rx-view", "order-sign": "rx-sign"}


def rule_of(card: dict[str, Any]) -> str:
    return str(card["source"]["topic"]["code"])


def indicators(cards: list[dict[str, Any]]) -> dict[str, str]:
    return {rule_of(c): c["indicator"] for c in cards}


def wait_for_answer(session: Sandbox, service: str, calls: int = 1) -> None:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while len(session.answers.get(service, [])) < calls:
        assert time.monotonic() < deadline, f"no answer from {service}"
        session.page.wait_for_timeout(100)


def feedback_rows(state_dir: Path, card_uuid: str) -> list[dict[str, Any]]:
    """The audit trail's feedback for one card, waiting for the background writer."""
    deadline = time.monotonic() + 20
    while True:
        with closing(sqlite3.connect(state_dir / "audit.sqlite3")) as db:
            db.row_factory = sqlite3.Row
            query = "SELECT * FROM audit_feedback WHERE card_uuid = ?"
            rows = [dict(r) for r in db.execute(query, (card_uuid,))]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


# --- the tests ----------------------------------------------------------------------------------


def test_patient_view_shows_the_hard_stop_and_an_accepted_suggestion_is_audited(
    browser: Browser, sandbox_url: str, kap_cds: LiveServer, state_dir: Path
) -> None:
    chart = patient_chart("uncontrolled-bp", active_kap_order=True)  # BP 186/112 yesterday
    with sandbox_session(browser, sandbox_url, kap_cds, chart, "patient-view") as sandbox:
        wait_for_answer(sandbox, "kap-patient-view")
        assert indicators(sandbox.cards("kap-patient-view")) == {"KAP-CI-011": "critical"}
        sandbox.shows_every_card("kap-patient-view")
        sandbox.screenshot("patient-view-hard-stop")

        card = sandbox.card_of("kap-patient-view", "KAP-CI-011")
        suggestion = card["suggestions"][0]
        sandbox.page.get_by_role("button", name=suggestion["label"]).click()
        rows = feedback_rows(state_dir, card["uuid"])
        sandbox.screenshot("patient-view-suggestion-accepted")
    assert [r["outcome"] for r in rows] == ["accepted"]
    assert json.loads(rows[0]["accepted_suggestions"]) == [suggestion["uuid"]]
    assert not rows[0]["unknown_card"]


def test_order_select_of_ketamine_shows_the_hard_stop_despite_the_sandbox_order_shape(
    browser: Browser, sandbox_url: str, kap_cds: LiveServer
) -> None:
    chart = patient_chart("uncontrolled-bp")
    with sandbox_session(browser, sandbox_url, kap_cds, chart, "order-select") as sandbox:
        wait_for_answer(sandbox, "kap-order-select")  # the empty order, before a drug is picked
        assert sandbox.cards("kap-order-select") == []  # not a KAP order yet: nothing to say
        sandbox.pick_ketamine()
        wait_for_answer(sandbox, "kap-order-select", calls=2)
        found = indicators(sandbox.cards("kap-order-select"))
        # The sandbox's order has category as one object and a {pill} dose: the category is
        # tolerated (no data card), the dose is named as not computable.
        assert found == {"KAP-CI-011": "critical", "KAP-DOSE-009": "warning"}, found
        sandbox.shows_every_card("kap-order-select")
        sandbox.screenshot("order-select-hard-stop")


def test_order_sign_for_an_eligible_patient_and_a_dismissal_with_a_reason_is_audited(
    browser: Browser, sandbox_url: str, kap_cds: LiveServer, state_dir: Path
) -> None:
    chart = patient_chart("eligible-patient-ketamine-iv")
    with sandbox_session(browser, sandbox_url, kap_cds, chart, "order-sign") as sandbox:
        sandbox.pick_ketamine()
        sandbox.page.get_by_role("button", name="Sign Order").click()
        wait_for_answer(sandbox, "kap-order-sign")
        # Eligible: only the fasting instruction, and the sandbox order's {pill} dose, which
        # no dose-range check can read. No contraindication, no data card.
        assert indicators(sandbox.cards("kap-order-sign")) == {
            "KAP-DOSE-009": "warning",
            "KAP-FAST-001": "info",
        }
        sandbox.shows_every_card("kap-order-sign")
        sandbox.screenshot("order-sign-eligible")

        card = sandbox.card_of("kap-order-sign", "KAP-DOSE-009")
        reason = card["overrideReasons"][0]
        sandbox.page.get_by_role("button", name="select dismiss reason").first.click()
        sandbox.page.get_by_role("menuitem", name=reason["display"]).click()
        expect(sandbox.page.get_by_text(card["summary"], exact=True)).to_have_count(0)
        rows = feedback_rows(state_dir, card["uuid"])
        sandbox.screenshot("order-sign-dismissed-with-reason")
    assert [r["outcome"] for r in rows] == ["overridden"]
    assert (rows[0]["override_system"], rows[0]["override_code"]) == (
        reason["system"],
        reason["code"],
    )
