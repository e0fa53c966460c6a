"""Fixtures for the report tests: a mini rule set, and settings pointing at it."""

from __future__ import annotations

from pathlib import Path

import pytest
from minirules import write_ruleset

from cds.config import Settings


@pytest.fixture
def mini_rules(tmp_path: Path) -> Path:
    return write_ruleset(tmp_path / "rules")


@pytest.fixture
def site_policy(tmp_path: Path) -> Path:
    path = tmp_path / "site-policy.yaml"
    path.write_text("bp_lookback_days: 14\nbp_warning_systolic: 150\n", encoding="utf-8")
    return path


@pytest.fixture
def mini_settings(settings: Settings, mini_rules: Path, site_policy: Path) -> Settings:
    return settings.model_copy(update={"rules_dir": mini_rules, "policy_file": site_policy})
