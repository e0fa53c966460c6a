"""Fact builder placeholder: filled in by the rule-family work (see build.py)."""

from __future__ import annotations

from typing import Any

from cds.facts.context import FactContext

Fact = dict[str, Any]


def build(ctx: FactContext) -> list[Fact]:
    return []
