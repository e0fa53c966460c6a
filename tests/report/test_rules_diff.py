"""``kap-cds rules diff``: two rule directories, and git revisions of a temporary repository."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from minirules import bp_rule, draft_rule, write_rule, write_ruleset, write_yaml

from cds.errors import CdsError
from cds.report.cli import diff_command


def _diff(old: str | Path, new: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    return diff_command(str(old), str(new), out), out.getvalue()


def test_added_removed_and_changed_with_a_correct_bump(tmp_path: Path) -> None:
    old = write_ruleset(tmp_path / "old")
    new = write_ruleset(
        tmp_path / "new", [bp_rule(version="1.1.0", systolic="policy.bp_warning_diastolic")]
    )
    extra = dict(draft_rule(), id="KAP-CI-903", title="Added rule")
    extra.pop("suppressed_by")
    write_rule(new, extra)
    code, text = _diff(old, new)
    assert code == 0, text
    assert "## Added rules (1)\n- KAP-CI-903 0.1.0 (draft, contraindication): Added rule" in text
    assert "## Removed rules (1)\n- KAP-CI-902" in text
    assert "### KAP-CI-901 1.0.0 -> 1.1.0: version bump ok" in text
    assert "- parts changed: logic" in text
    assert "variants.order.condition" in text
    assert "bump required by the policy: minor; bump made: minor" in text
    assert "-            gt: policy.bp_warning_systolic" in text  # the unified YAML diff
    assert "+            gt: policy.bp_warning_diastolic" in text


def test_missing_bump_exits_1(tmp_path: Path) -> None:
    old = write_ruleset(tmp_path / "old", [bp_rule()])
    new = write_ruleset(tmp_path / "new", [bp_rule(version="1.0.1", indicator="critical")])
    code, text = _diff(old, new)
    assert code == 1
    assert "KAP-CI-901 1.0.0 -> 1.0.1: BUMP POLICY VIOLATED" in text
    assert "- parts changed: shape" in text
    assert "bump required by the policy: major; bump made: patch" in text
    assert "1 rule(s) violate the bump policy: KAP-CI-901" in text


def test_text_change_needs_a_patch_and_unchanged_version_is_a_violation(tmp_path: Path) -> None:
    old = write_ruleset(tmp_path / "old", [bp_rule()])
    new = write_ruleset(tmp_path / "new", [bp_rule(summary="New wording {bp.sbp}/{bp.dbp}.")])
    code, text = _diff(old, new)
    assert code == 1
    assert "- parts changed: text" in text and "variants.order.summary" in text
    assert "bump made: none (version not increased)" in text


def test_valueset_policy_and_reason_changes_are_listed(tmp_path: Path) -> None:
    old = write_ruleset(tmp_path / "old", [bp_rule()])
    new = write_ruleset(tmp_path / "new", [bp_rule()])
    vs = yaml_load(new / "valuesets" / "VS-MOOD-TEST.yaml")
    vs["include"][1]["confidence"] = "K"
    vs["include"].append({"system": "http://snomed.info/sct", "code": "123", "display": "new"})
    write_yaml(new / "valuesets" / "VS-MOOD-TEST.yaml", vs)
    policy = yaml_load(new / "policy.yaml")
    policy["bp_lookback_days"]["value"] = 21
    write_yaml(new / "policy.yaml", policy)
    write_yaml(
        new / "override-reasons.yaml",
        {
            "OR-BENEFIT": "Benefit outweighs risk",
            "OR-DATA-WRONG": "Data in chart is wrong",
            "OR-NEW": "New reason",
        },
    )
    code, text = _diff(old, new)
    assert code == 0
    assert "VS-MOOD-TEST: include + http://snomed.info/sct|123 (new, confidence K)" in text
    assert (
        "VS-MOOD-TEST: include ~ http://www.nlm.nih.gov/research/umls/rxnorm|99999: "
        "confidence 'V' -> 'K'" in text
    )
    assert "policy bp_lookback_days: value 30 -> 21" in text
    assert "override reason added: OR-NEW (New reason)" in text


def yaml_load(path: Path) -> dict:  # type: ignore[type-arg]
    import yaml

    data: dict = yaml.safe_load(path.read_text(encoding="utf-8"))  # type: ignore[type-arg]
    return data


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A throwaway git repository: commit 1 has rules 901+902, commit 2 bumps 901 wrongly."""
    root = tmp_path / "repo"
    write_ruleset(root / "rules")
    _git(root, "init", "-q")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "add", "rules")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "one")
    write_rule(root / "rules", bp_rule(version="1.0.1", systolic="policy.bp_warning_diastolic"))
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qam", "two")
    return root


def test_git_revisions(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    code, text = _diff("HEAD~1", "HEAD")
    assert code == 1
    assert "# Rule set diff: HEAD~1 -> HEAD" in text
    assert "KAP-CI-901 1.0.0 -> 1.0.1: BUMP POLICY VIOLATED" in text
    assert "bump required by the policy: minor; bump made: patch" in text


def test_revision_against_the_working_tree(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    write_rule(repo / "rules", bp_rule(version="1.1.0", systolic="policy.bp_warning_diastolic"))
    code, text = _diff("HEAD~1", str(repo))  # a checkout: its rules/ is used
    assert code == 0, text
    code, text = _diff("HEAD", "rules")
    assert code == 0 and "KAP-CI-901 1.0.1 -> 1.1.0: version bump ok" in text


def test_unknown_revision_is_a_clear_error(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    with pytest.raises(CdsError, match="neither a directory nor a git revision"):
        _diff("no-such-branch", "HEAD")
    with pytest.raises(CdsError, match="neither a directory nor a git revision"):
        _diff("--output=/tmp/x", "HEAD")
