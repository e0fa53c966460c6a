"""Fixtures for the shadow and replay tests (helpers live in replay_support)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from replay_support import BP_RULES, EXAMPLES, RulesFactory, copy_rules


@pytest.fixture
def small_examples(tmp_path: Path) -> Path:
    """fhir_examples with only the blood-pressure rules' cases (a replay in a second or two)."""
    target = tmp_path / "examples"
    for part in ("patients", "orders"):
        shutil.copytree(EXAMPLES / part, target / part)
    for rule_id in BP_RULES:
        shutil.copytree(EXAMPLES / "cases" / rule_id, target / "cases" / rule_id)
    return target


@pytest.fixture
def rules_copy(tmp_path: Path) -> RulesFactory:
    return lambda name: copy_rules(tmp_path, name)
