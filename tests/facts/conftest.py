"""Fixtures shared by the fact-builder tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.ruleset.loader import LoadedRuleSet, load_ruleset

RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture(scope="module")
def ruleset() -> LoadedRuleSet:
    """The shipped rule set: its policy and value sets are what the builders read."""
    return load_ruleset(RULES)
