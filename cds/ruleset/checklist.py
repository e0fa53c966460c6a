"""The readiness checklist (``rules/readiness.yaml``): which rules share one card, in what order,
and how urgent their lines are by the time left to the dose.

It is data a compliance officer reads beside the rule files: the rules it lists keep their own
files, versions and fixtures; the checklist only decides how their findings are shown.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cds.errors import RuleLoadError
from cds.hooks.cards import Indicator
from cds.ruleset.model import RULE_ID

CHECKLIST_FILE = "readiness.yaml"
WINDOW_POLICY_KEY = "readiness_critical_hours"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Severity(_Model):
    near: Indicator  # the dose is close: encounter-start, or within the policy window
    later: Indicator  # there is still time to close the gap

    @model_validator(mode="after")
    def _near_not_milder(self) -> Severity:
        if self.near.rank < self.later.rank:
            raise ValueError("a gap cannot be milder when the dose is nearer")
        return self


class Line(_Model):
    rule: str = Field(pattern=RULE_ID)
    label: str = Field(min_length=2, max_length=30)
    severity: Severity | None = None  # replaces the checklist's severity for this rule


class Checklist(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: str = Field(min_length=3, max_length=60)
    severity: Severity
    override_reasons: list[str] = Field(default_factory=list)
    lines: list[Line] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_rules(self) -> Checklist:
        rules = [line.rule for line in self.lines]
        if len(set(rules)) != len(rules):
            raise ValueError("a rule is listed twice")
        return self

    def line(self, rule_id: str) -> Line | None:
        return next((line for line in self.lines if line.rule == rule_id), None)

    def position(self, rule_id: str) -> int:
        return next(i for i, line in enumerate(self.lines) if line.rule == rule_id)

    def indicator(self, rule_id: str, near: bool) -> Indicator:
        line = self.line(rule_id)
        severity = (line.severity if line else None) or self.severity
        return severity.near if near else severity.later


def load_checklist(path: Path) -> Checklist | None:
    """The checklist, or None when the rule set has none (every rule then has its own card)."""
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Checklist.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise RuleLoadError(str(path), None, None, f"cannot read: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or None
        raise RuleLoadError(str(path), None, loc, err["msg"]) from None
