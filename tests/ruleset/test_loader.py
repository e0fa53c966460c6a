"""A bad rule set is refused at load with file, rule id, field and reason."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds.errors import RuleLoadError
from cds.ruleset.catalog import build_catalog, read_catalog, version_problems
from cds.ruleset.loader import load_ruleset

RULES = Path(__file__).resolve().parents[2] / "rules"
GOOD_RULE: dict[str, Any] = yaml.safe_load((RULES / "contraindication/KAP-CI-001.yaml").read_text())


@pytest.fixture()
def ruleset_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    target.mkdir()
    shutil.copytree(RULES / "valuesets", target / "valuesets")
    for name in ("policy.yaml", "override-reasons.yaml"):
        shutil.copy(RULES / name, target / name)
    (target / "contraindication").mkdir()
    return target


def write_rule(directory: Path, rule: dict[str, Any]) -> Path:
    path = directory / rule["family"] / f"{rule['id']}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(rule, sort_keys=False), encoding="utf-8")
    return path


def variant_with(**changes: Any) -> dict[str, Any]:
    rule = yaml.safe_load(yaml.safe_dump(GOOD_RULE))
    rule["variants"][0].update(changes)
    return rule


def condition(*patterns: dict[str, Any]) -> dict[str, Any]:
    return {"all": [{"fact": "plan"}, {"fact": "allergy"}, *patterns]}


def test_the_good_rule_loads(ruleset_dir: Path) -> None:
    write_rule(ruleset_dir, GOOD_RULE)
    loaded = load_ruleset(ruleset_dir)
    assert [v.key for v in loaded.compiled["order-sign"]] == ["KAP-CI-001#allergy"]
    assert len(loaded.digest) == 64


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        (
            {"condition": condition({"fact": "vitals"})},
            "variants[0].condition.all[2].fact",
            "unknown fact type 'vitals'",
        ),
        (
            {"condition": condition({"fact": "bp", "where": {"systolic": {"gt": 140}}})},
            "variants[0].condition.all[2].where.systolic",
            "fact 'bp' has no field 'systolic'",
        ),
        (
            {"condition": condition({"fact": "condition", "where": {"vs": "VS-NOPE"}})},
            "variants[0].condition.all[2].where.vs",
            "unknown value set 'VS-NOPE'",
        ),
        (
            {"condition": condition({"fact": "bp", "where": {"sbp": {"gt": "policy.nope"}}})},
            "variants[0].condition.all[2].where.sbp",
            "unknown policy key 'nope'",
        ),
        (
            {"condition": condition({"fact": "bp", "where": {"sbp": {"between": 1}}})},
            "variants[0].condition.all[2].where.sbp",
            "unknown operator 'between'",
        ),
        (
            {"condition": condition({"fact": "plan", "as": "p2", "where": {"drug": "lsd"}})},
            "variants[0].condition.all[2].where.drug",
            "'lsd' is not one of ketamine, esketamine",
        ),
        (
            {"condition": condition({"fact": "condition", "where": {"code": {"gt": 3}}})},
            "variants[0].condition.all[2].where.code",
            "gt compares numbers; code is a string",
        ),
        ({"summary": "x" * 140}, "variants[0].summary", "characters with the longest"),
        ({"summary": "{bp.sbp} high"}, "variants[0].summary", "names no pattern"),
        ({"detail": "{allergy.colour}"}, "variants[0].detail", "has no field 'colour'"),
    ],
)
def test_condition_and_template_errors_name_file_rule_field(
    ruleset_dir: Path, changes: dict[str, Any], field: str, reason: str
) -> None:
    path = write_rule(ruleset_dir, variant_with(**changes))
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(ruleset_dir)
    error = caught.value
    assert (error.file, error.rule_id, error.field) == (str(path), "KAP-CI-001", field)
    assert reason in error.reason


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda r: r.update(version="1.0"), "version", "String should match pattern"),
        (lambda r: r.update(family="misc"), "family", "Input should be"),
        (lambda r: r.update(status="draft"), None, "needs status_reason"),
        (
            lambda r: r.update(override_reasons=["OR-NOPE"]),
            "override_reasons",
            "unknown override reason",
        ),
        (
            lambda r: r.update(override_reasons=[]),
            "variants[0].override_reasons",
            "must offer override reasons",
        ),
        (lambda r: r.update(suppressed_by=["KAP-CI-999"]), "suppressed_by", "unknown rule"),
        (
            lambda r: r["variants"][0]["suggestions"][0].update(action="launch-rocket"),
            "variants.allergy.suggestions",
            "unknown action",
        ),
        (lambda r: r.pop("evidence"), "evidence", "Field required"),
    ],
)
def test_header_errors(ruleset_dir: Path, mutate: Any, field: str | None, reason: str) -> None:
    rule = yaml.safe_load(yaml.safe_dump(GOOD_RULE))
    mutate(rule)
    family = rule["family"] if rule["family"] != "misc" else "contraindication"
    path = ruleset_dir / family / "KAP-CI-001.yaml"
    path.write_text(yaml.safe_dump(rule), encoding="utf-8")
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(ruleset_dir)
    assert caught.value.file == str(path)
    assert caught.value.rule_id == "KAP-CI-001"
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_file_name_must_match_id(ruleset_dir: Path) -> None:
    path = ruleset_dir / "contraindication" / "KAP-CI-002.yaml"
    path.write_text(yaml.safe_dump(GOOD_RULE), encoding="utf-8")
    with pytest.raises(RuleLoadError, match="file name must be KAP-CI-001.yaml"):
        load_ruleset(ruleset_dir)


def test_site_policy_overrides_values_and_changes_the_digest(
    ruleset_dir: Path, tmp_path: Path
) -> None:
    write_rule(ruleset_dir, GOOD_RULE)
    site = tmp_path / "site.yaml"
    site.write_text("bp_hard_stop_systolic: 170\n", encoding="utf-8")
    default, custom = load_ruleset(ruleset_dir), load_ruleset(ruleset_dir, site)
    assert custom.policy["bp_hard_stop_systolic"] == 170
    assert custom.policy.overridden == {"bp_hard_stop_systolic"}
    assert custom.digest != default.digest
    site.write_text("bp_hard_stop_systolic: high\n", encoding="utf-8")
    with pytest.raises(RuleLoadError, match="expected int, got str"):
        load_ruleset(ruleset_dir, site)
    site.write_text("no_such_key: 1\n", encoding="utf-8")
    with pytest.raises(RuleLoadError, match="unknown policy key"):
        load_ruleset(ruleset_dir, site)


def test_version_must_be_bumped_when_content_changes(ruleset_dir: Path) -> None:
    write_rule(ruleset_dir, GOOD_RULE)
    catalog = build_catalog(load_ruleset(ruleset_dir))
    changed = variant_with(summary="Documented ketamine/esketamine allergy — do not administer.")
    write_rule(ruleset_dir, changed)
    problems = version_problems(load_ruleset(ruleset_dir), catalog)
    assert len(problems) == 1 and "patch change" in problems[0]
    major, minor, patch = (int(n) for n in GOOD_RULE["version"].split("."))
    changed["version"] = f"{major}.{minor}.{patch + 1}"
    write_rule(ruleset_dir, changed)
    assert version_problems(load_ruleset(ruleset_dir), catalog) == []
    changed["variants"][0]["indicator"] = "warning"
    write_rule(ruleset_dir, changed)
    problems = version_problems(load_ruleset(ruleset_dir), catalog)
    assert len(problems) == 1 and "major change" in problems[0]


def test_shipped_catalog_is_current() -> None:
    loaded = load_ruleset(RULES)
    assert read_catalog(RULES) == build_catalog(loaded), "run `make catalog`"


@pytest.mark.parametrize(
    ("field", "text", "reason"),
    [
        ("evidence", "Allergy: {allergy.display} — `{allergy.ref}`", "is an identifier"),
        ("detail", "See the allergy rule KAP-CI-002 for more.", "names KAP-CI-002"),
        ("summary", "Allergy in VS-KETAMINE on record.", "names VS-KETAMINE"),
    ],
)
def test_card_text_never_shows_identifiers(
    ruleset_dir: Path, field: str, text: str, reason: str
) -> None:
    write_rule(ruleset_dir, variant_with(**{field: text}))
    with pytest.raises(RuleLoadError, match=reason):
        load_ruleset(ruleset_dir)
