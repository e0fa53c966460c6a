"""``kap-cds rules report`` and ``kap-cds rules diff`` (wired in ``cds.cli``)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from cds.audit.cli import UsageError, parse_instant
from cds.config import EXAMPLES_DIR, Settings
from cds.errors import CdsError, RuleLoadError
from cds.report.behaviour import behaviour_from_url
from cds.report.content import ReportInput, build_report
from cds.report.diff import diff_rulesets
from cds.report.difftext import render_diff
from cds.report.fixtures import FixtureResult, list_fixtures, run_fixtures
from cds.report.gitrev import materialise
from cds.report.html import render_html
from cds.report.markdown import render_markdown
from cds.ruleset.loader import LoadedRuleSet, load_ruleset

EXIT_OK, EXIT_BUMP, EXIT_USAGE = 0, 1, 2


def report_command(settings: Settings, fmt: str, output: Path, since: str | None) -> int:
    """Write the compliance report of the configured rule set to ``output``."""
    if fmt not in ("html", "md"):
        sys.stderr.write(f"kap-cds rules report: --format must be html or md, not {fmt!r}\n")
        return EXIT_USAGE
    try:
        start = parse_instant(since, "--since")
    except UsageError as exc:
        sys.stderr.write(f"kap-cds rules report: {exc}\n")
        return EXIT_USAGE
    ruleset = load_ruleset(settings.rules_dir, settings.policy_file)
    data = ReportInput(
        ruleset,
        datetime.now(UTC),
        fixtures_for(ruleset, settings),
        behaviour_from_url(settings.database_url, start, ruleset.offered_reasons()),
    )
    doc = build_report(data)
    text = render_html(doc) if fmt == "html" else render_markdown(doc)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {output} ({len(ruleset.rules)} rules, digest {ruleset.digest})\n")
    return EXIT_OK


def fixtures_for(
    ruleset: LoadedRuleSet, settings: Settings, examples_dir: Path = EXAMPLES_DIR
) -> dict[str, list[FixtureResult]]:
    """Run every fixture against ``ruleset`` (with the site policy: results are for this site)."""
    from cds.evaluator import RuleEvaluator  # builds the rules engine: only when a report runs

    try:
        evaluator = RuleEvaluator(ruleset, settings.facility_zone)
    except RuleLoadError as exc:
        return list_fixtures(examples_dir, f"not run: {exc.detail}")
    return run_fixtures(evaluator, settings, examples_dir)


def diff_command(old: str, new: str, out: TextIO) -> int:
    """Compare two rule sets (directories or git revisions); 1 when a bump is missing."""
    with materialise(old) as old_dir, materialise(new) as new_dir:
        before = _load(old, old_dir)
        after = _load(new, new_dir)
        diff = diff_rulesets(before, after, old, new)
    out.write(render_diff(diff))
    return EXIT_BUMP if diff.violations else EXIT_OK


def _load(label: str, directory: Path) -> LoadedRuleSet:
    try:
        return load_ruleset(directory, None)  # shipped defaults: a diff compares the files
    except RuleLoadError as exc:
        raise CdsError(f"{label}: rule set rejected: {exc.detail}") from None
