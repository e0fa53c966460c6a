"""``GET /governance`` through the app: HTML, rule ids, escaping, caching, behaviour figures."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_fakes import FIXED_NOW, FakeAudit, FakeEvaluator
from fastapi.testclient import TestClient

from cds.app import create_app
from cds.audit import AuditStore, open_store
from cds.config import Settings
from cds.ruleset.loader import load_ruleset

# The report tests' mini rule set and audit seeding (tests/report has no package __init__).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from auditseed import seed  # noqa: E402
from minirules import write_ruleset  # noqa: E402


@pytest.fixture
def mini_settings(settings: Settings, tmp_path: Path) -> Settings:
    rules = write_ruleset(tmp_path / "rules")
    return settings.model_copy(update={"rules_dir": rules})


def _client(settings: Settings, audit: object) -> TestClient:
    app = create_app(
        settings,
        evaluator=FakeEvaluator(),
        audit=audit,  # type: ignore[arg-type]
        clock=lambda: FIXED_NOW,
    )
    return TestClient(app)


def test_page_lists_the_rules_and_escapes_their_text(mini_settings: Settings) -> None:
    with _client(mini_settings, FakeAudit()) as client:
        response = client.get("/governance")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'sha256-" in response.headers["content-security-policy"]
    html = response.text
    assert 'href="/governance/rules/KAP-CI-901"' in html
    assert 'href="/governance/rules/KAP-CI-902"' in html
    rule_page = client_page(mini_settings, "/governance/rules/KAP-CI-901")
    assert 'id="KAP-CI-901"' in rule_page
    assert 'data-search="kap-ci-901 contraindication' in rule_page
    assert "Elevated blood pressure &lt;test&gt; &amp; co" in html
    assert "<script>alert(1)</script>" not in rule_page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rule_page
    assert load_ruleset(mini_settings.rules_dir, None).digest in html
    assert "No audit store is available to this service" in html  # FakeAudit has no engine
    assert "No fixtures." in rule_page  # the mini rule set has none


def client_page(settings: Settings, path: str) -> str:
    with _client(settings, FakeAudit()) as client:
        response = client.get(path)
    assert response.status_code == 200, response.text
    return response.text


def test_repository_rule_set(settings: Settings) -> None:
    with _client(settings, FakeAudit()) as client:
        html = client.get("/governance").text
        ruleset = load_ruleset(settings.rules_dir, None)
        for rule_id in list(ruleset.rules)[:20]:
            assert f'href="/governance/rules/{rule_id}"' in html
            page = client.get(f"/governance/rules/{rule_id}").text
            assert f'id="{rule_id}"' in page and "Version history" in page
    assert "not run on this page" in html  # fixtures are listed, not run, in the server
    # Checklist cards link to its section (source.url ...#readiness), which lists every line.
    assert ruleset.checklist and f'id="{ruleset.checklist.id}"' in html
    section = html.split(f'id="{ruleset.checklist.id}"', 1)[1].split("<h2", 1)[0]
    assert all(line.rule in section for line in ruleset.checklist.lines)
    assert len(html) < 150_000  # an index, not every rule's section (was 577 KB)


def test_unknown_rule_page_is_404(settings: Settings) -> None:
    with _client(settings, FakeAudit()) as client:
        response = client.get("/governance/rules/KAP-CI-999")
    assert response.status_code == 404


def test_catalog_is_rendered_once_per_digest(mini_settings: Settings) -> None:
    with _client(mini_settings, FakeAudit()) as client:
        first = client.get("/governance").text
        cache = client.app.state.governance_cache  # type: ignore[attr-defined]
        rendered = dict(cache._catalog)
        second = client.get("/governance").text
        assert dict(cache._catalog) == rendered
        assert next(iter(rendered.values())) is next(iter(cache._catalog.values()))
    assert first == second


def test_bad_since_is_400(mini_settings: Settings) -> None:
    with _client(mini_settings, FakeAudit()) as client:
        assert client.get("/governance", params={"since": "last week"}).status_code == 400


@pytest.fixture
def store(mini_settings: Settings) -> Iterator[AuditStore]:
    s = open_store(mini_settings, backoff_initial=0.01, backoff_max=0.05)
    try:
        seed(s)
        yield s
    finally:
        s.close()


def test_behaviour_figures_from_the_audit_store(mini_settings: Settings, store: AuditStore) -> None:
    with _client(mini_settings, store) as client:
        html = client.get("/governance").text
        later = client.get("/governance", params={"since": "2100-01-01"}).text
    figures = html.split('id="behaviour"')[1].split('id="rules"')[0]
    assert "<td>5</td><td>1</td><td>4</td><td>0</td><td>80%</td>" in figures
    assert "alert fatigue" in figures
    assert "OR-BENEFIT Or-Benefit (3)" in figures
    assert "since 2100-01-01" in later and "<td>5</td>" not in later.split('id="rules"')[0]
