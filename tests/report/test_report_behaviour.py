"""Behaviour figures from a real SQLite audit store: counts, reasons, never fired, fatigue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from auditseed import seed

from cds.audit import AuditStore, open_store
from cds.config import Settings
from cds.report.behaviour import behaviour_from_url, read_behaviour
from cds.report.cli import report_command


@pytest.fixture
def store(mini_settings: Settings) -> Iterator[AuditStore]:
    s = open_store(mini_settings, backoff_initial=0.01, backoff_max=0.05)
    try:
        seed(s)
        yield s
    finally:
        s.close()


def test_figures_and_flags(store: AuditStore) -> None:
    behaviour = read_behaviour(store.engine, None)
    stats = behaviour.of("KAP-CI-901")
    assert stats is not None and (stats.fired, stats.accepted, stats.overridden) == (5, 1, 4)
    assert [(r.code, r.count) for r in stats.override_reasons] == [
        ("OR-BENEFIT", 3),
        ("OR-DATA-WRONG", 1),
    ]
    assert [s.rule_id for s in behaviour.fatigued()] == ["KAP-CI-901"]
    assert behaviour.never_fired(["KAP-CI-901", "KAP-CI-902"]) == ["KAP-CI-902"]
    assert behaviour.unknown_rules(["KAP-CI-901", "KAP-CI-902"]) == ["KAP-CI-001"]


def test_since_filters_the_period(store: AuditStore, mini_settings: Settings) -> None:
    later = behaviour_from_url(mini_settings.database_url, datetime(2100, 1, 1, tzinfo=UTC))
    assert later.available and later.stats == {}


def test_report_with_the_audit_store(
    store: AuditStore, mini_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "report.md"
    assert report_command(mini_settings, "md", out, "2026-01-01") == 0
    text = out.read_text(encoding="utf-8")
    behaviour = text.split('<a id="behaviour"></a>')[1].split('<a id="rules"></a>')[0]
    assert "since 2026-01-01T00:00:00+00:00" in behaviour
    assert "Never fired in the period: none" in behaviour  # 902 is a draft: never evaluated
    assert "[KAP-CI-902]" not in behaviour  # only rules that fired get a row
    assert "(alert fatigue): [KAP-CI-901](#KAP-CI-901)" in behaviour
    assert (
        "| [KAP-CI-901](#KAP-CI-901) | 5 | 1 | 4 | 0 | 80% | OR-BENEFIT Or-Benefit (3); "
        "OR-DATA-WRONG Or-Data-Wrong (1) | alert fatigue |" in behaviour
    )
    # Charts stand as captions in Markdown (the HTML report embeds the SVG).
    assert "_Chart: Cards per KAP request by service" in behaviour
    assert "Also in the trail but not in this rule set: KAP-CI-001" in behaviour
    rule = text.split('<a id="KAP-CI-901"></a>')[1]
    assert "- **Fired:** 5" in rule and "- **Overridden:** 4 (80%)" in rule
    assert "review for alert fatigue" in rule


def test_unreachable_store_is_reported(mini_settings: Settings, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    broken = mini_settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}
    )
    (tmp_path / "empty.sqlite3").write_bytes(b"")  # exists, but has no audit tables
    out = tmp_path / "report.html"
    assert report_command(broken, "html", out, None) == 0
    assert "the audit store could not be read (OperationalError)" in out.read_text()
    weird = behaviour_from_url("mysql://u:secret@h/db", None)
    assert weird.error and "secret" not in weird.error
