"""The compliance report: content of the HTML and Markdown variants, on a mini rule set (exact
assertions) and on the repository's own rule set (every active rule is there)."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cds.config import REPO_ROOT, Settings
from cds.report.behaviour import Behaviour
from cds.report.cli import fixtures_for, report_command
from cds.report.content import ReportInput, build_report
from cds.report.html import render_html
from cds.report.markdown import render_markdown
from cds.ruleset.loader import load_ruleset

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _report(rules: Path, policy: Path | None, fmt: str) -> str:
    ruleset = load_ruleset(rules, policy)
    doc = build_report(ReportInput(ruleset, NOW, {}, None))
    return render_html(doc) if fmt == "html" else render_markdown(doc)


@pytest.fixture
def html(mini_rules: Path, site_policy: Path) -> str:
    return _report(mini_rules, site_policy, "html")


@pytest.fixture
def md(mini_rules: Path, site_policy: Path) -> str:
    return _report(mini_rules, site_policy, "md")


def test_front_page_has_digest_counts_drafts_v_codes_and_policy(
    html: str, mini_rules: Path, site_policy: Path
) -> None:
    ruleset = load_ruleset(mini_rules, site_policy)
    assert ruleset.digest in html
    assert "<td>contraindication</td><td>2</td><td>1</td><td>0</td><td>1</td><td>0</td>" in html
    assert "awaiting clinical sign-off" in html  # the draft rule and why
    assert "<code>99999</code>" in html and "unverified stabilizer" in html  # V code
    policy = html.split('id="policy"')[1].split("<h2")[0]
    assert "bp_lookback_days" in policy and "strict_mode" in policy
    assert "bp_warning_systolic" in policy  # a label value changed by the site is listed too


def test_site_policy_value_is_shown_as_the_site_value(html: str) -> None:
    rule = html.split('id="KAP-CI-901"')[1]
    assert "<td>14 days</td><td>site policy (default 30 days)</td>" in rule
    assert "sbp &gt; 150 (site policy bp_warning_systolic = 150)" in rule
    assert "dbp &gt; 90 (policy bp_warning_diastolic = 90)" in rule


def test_rule_section_content(html: str, mini_rules: Path) -> None:
    ruleset = load_ruleset(mini_rules, None)
    rule = html.split('id="KAP-CI-901"')[1].split("<section")[0]
    assert "<dd>1.0.0</dd>" in rule and ruleset.rules["KAP-CI-901"].sha256 in rule
    assert "plan: drug is esketamine" in rule
    assert "no medication: vs is VS-MOOD-TEST (Mood stabilizers (test)) and active is true" in rule
    assert "The newest blood pressure is above 140/90 &lt;b&gt;bold&lt;/b&gt;." in rule
    assert 'href="https://example.org/label?a=1&amp;b=2"' in rule  # evidence link
    assert "<code>OR-BENEFIT</code></td><td>Benefit outweighs risk" in rule
    assert "Order a blood pressure check (order-bp-check)" in rule
    assert "<code>6448</code>" in rule and "<td>C</td>" in rule
    draft = html.split('id="KAP-CI-902"')[1]
    assert "only when policy strict_mode is true (now false: DISABLED at this site)" in draft
    assert "Not shown when these fire: KAP-CI-901" in draft


def test_html_escapes_rule_text_and_needs_no_external_assets(html: str) -> None:
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Elevated blood pressure &lt;test&gt; &amp; co" in html
    assert "<script" not in html  # the file report needs no JavaScript at all
    assert not re.search(r'(src|href)="(https?:)?//(?!example\.org|www\.spravatorems)', html)
    assert "<link" not in html and "@import" not in html


def test_markdown_has_the_same_content(md: str, mini_rules: Path, site_policy: Path) -> None:
    ruleset = load_ruleset(mini_rules, site_policy)
    assert ruleset.digest in md
    assert '<a id="KAP-CI-901"></a>' in md and '<a id="KAP-CI-902"></a>' in md
    assert "sbp \\> 150 (site policy bp_warning_systolic = 150)" in md
    assert "| `bp_lookback_days` | 14 days | site policy (default 30 days) |" in md
    assert "`99999`" in md and "awaiting clinical sign-off" in md
    assert "Elevated blood pressure \\<test\\> \\& co" in md
    assert "<script>" not in md.replace("```markdown\nRepeat the **BP** after rest. <script>", "")
    assert "[SPRAVATO REMS](https://www.spravatorems.com/)" in md


def test_behaviour_unavailable_is_said_not_fatal(mini_rules: Path) -> None:
    ruleset = load_ruleset(mini_rules, None)
    behaviour = Behaviour(None, error="the audit store could not be read (OperationalError)")
    html = render_html(build_report(ReportInput(ruleset, NOW, {}, behaviour)))
    assert "Behaviour figures are not included: the audit store could not be read" in html


def test_report_of_the_repository_rule_set(tmp_path: Path, settings: Settings) -> None:
    """Every rule of the real rule set appears with version, digest and evidence."""
    # A snapshot: the repository's rules are edited while the suite runs.
    snapshot = shutil.copytree(REPO_ROOT / "rules", tmp_path / "rules")
    settings = settings.model_copy(update={"rules_dir": snapshot})
    out = tmp_path / "report.html"
    assert report_command(settings, "html", out, None) == 0
    ruleset = load_ruleset(snapshot, None)
    markdown = render_markdown(build_report(ReportInput(ruleset, NOW, {}, None)))
    for text in (out.read_text(encoding="utf-8"), markdown):
        assert ruleset.digest in text
        for rule_id, source in ruleset.rules.items():
            section = text.split(f'id="{rule_id}"', 1)[1][:60_000]
            assert source.rule.version in section and source.sha256 in section, rule_id
            assert source.rule.evidence[0].id in section, rule_id
    assert "no audit database yet" in out.read_text(encoding="utf-8")  # no test store


def test_fixtures_run_and_pass_for_a_repository_rule(settings: Settings) -> None:
    ruleset = load_ruleset(settings.rules_dir, None)
    results = fixtures_for(ruleset, settings, REPO_ROOT / "fhir_examples")
    assert results["KAP-CI-001"], "KAP-CI-001 has fixtures"
    assert all(r.status == "pass" for r in results["KAP-CI-001"]), results["KAP-CI-001"]


def test_bad_since_is_a_usage_error(settings: Settings, tmp_path: Path) -> None:
    assert report_command(settings, "html", tmp_path / "r.html", "yesterday") == 2
    assert report_command(settings, "pdf", tmp_path / "r.pdf", None) == 2
