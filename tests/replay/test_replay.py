"""Impact replay on a real change: the blood-pressure hard stop moved from 180/110 to 170/105."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from replay_support import RulesFactory, lower_bp_hard_stop

from cds.app import create_app
from cds.audit.archive import new_key
from cds.cli import main
from cds.config import Settings
from cds.replay.cli import ReplayOptions, replay_command
from cds.ruleset.cases import build_request, load_cases


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        spool_dir=tmp_path / "spool",
        **extra,
    )


def _replay(settings: Settings, options: ReplayOptions) -> dict[str, object]:
    out = io.StringIO()
    assert replay_command(settings, options, out) == 0
    report: dict[str, object] = json.loads(out.getvalue())
    return report


def _options(candidate: Path, examples: Path, source: str = "fixtures") -> ReplayOptions:
    return ReplayOptions(candidate, None, None, source, "json", examples, None)


def _by_rule(report: dict[str, object]) -> dict[str, dict[str, object]]:
    return {r["rule_id"]: r for r in report["rules"]}  # type: ignore[index, union-attr]


def test_replay_over_fixtures_shows_the_lower_hard_stop(
    rules_copy: RulesFactory, small_examples: Path, tmp_path: Path
) -> None:
    candidate = rules_copy("candidate")
    lower_bp_hard_stop(candidate)
    report = _replay(_settings(tmp_path), _options(candidate, small_examples))
    rules = _by_rule(report)
    assert report["source"] == "rule fixtures"
    assert report["inputs"] == len(load_cases(small_examples))
    assert report["baseline_ruleset"] != report["candidate_ruleset"]
    # 179/109 was below the hard stop, and is above 170/105: the hard stop appears there and
    # the warning it suppresses disappears.
    hard_stop = rules["KAP-CI-011"]
    assert hard_stop["appear"] >= 1 and hard_stop["disappear"] == 0
    example = hard_stop["examples"]["appear"][0]  # type: ignore[index]
    assert example["before"] is None and example["after"] == "critical"
    assert example["label"].startswith("fixture KAP-CI-011/")
    assert rules["KAP-CI-010"]["disappear"] >= 1
    assert set(rules) <= {"KAP-CI-010", "KAP-CI-011"}  # nothing else moves


def test_replay_of_an_unchanged_rule_set_changes_nothing(
    rules_copy: RulesFactory, small_examples: Path, tmp_path: Path
) -> None:
    report = _replay(_settings(tmp_path), _options(rules_copy("same"), small_examples))
    assert report["rules"] == [] and report["errors"] == {}


def test_replay_from_the_encrypted_archive(
    rules_copy: RulesFactory,
    small_examples: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Requests answered by the service are archived (encrypted) and replayed from the CLI."""
    settings = _settings(tmp_path, archive_key=new_key())
    [between] = [c for c in load_cases(small_examples) if c.name == "quiet-bp-179-109"]
    request = build_request(between.case, small_examples)
    request["context"]["patientId"] = request["prefetch"]["patient"]["id"]
    app = create_app(settings)
    with TestClient(app) as client:
        answer = client.post("/cds-services/kap-order-sign", json=request)
        assert answer.status_code == 200
        assert app.state.runtime.audit.flush(10)
    candidate = rules_copy("candidate")
    lower_bp_hard_stop(candidate)
    report = _replay(settings, _options(candidate, small_examples, source="archive"))
    assert report["source"] == "the input archive" and report["inputs"] == 1
    # The read is logged (how many, which candidate), without any patient data.
    [read] = [r for r in caplog.records if "input archive read" in r.getMessage()]
    assert "1 evaluations" in read.getMessage()
    assert request["context"]["patientId"] not in caplog.text
    [example] = _by_rule(report)["KAP-CI-011"]["examples"]["appear"]  # type: ignore[index]
    assert example["label"].startswith("audit evaluation ")


def test_archive_source_without_a_key_is_a_one_line_error(
    rules_copy: RulesFactory,
    small_examples: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = _options(rules_copy("c"), small_examples, source="archive")
    assert replay_command(_settings(tmp_path), options, io.StringIO()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KAP_CDS_ARCHIVE_KEY" in err


def test_replay_command_line_prints_a_table(
    rules_copy: RulesFactory,
    small_examples: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    candidate = rules_copy("candidate")
    lower_bp_hard_stop(candidate)
    monkeypatch.setenv("KAP_CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'a.sqlite3'}")
    monkeypatch.setenv("KAP_CDS_SPOOL_DIR", str(tmp_path / "spool"))
    argv = ["replay", "--rules", str(candidate), "--examples", str(small_examples)]
    assert main([*argv, "--third-party", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "| KAP-CI-011 | 1 |" in out
    assert "would appear: fixture KAP-CI-011/quiet-bp-179-109 (no card → critical)" in out
