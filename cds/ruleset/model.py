"""The rule-file format, as pydantic models (a rule file that does not fit is rejected at load).

A rule file is YAML: a header a compliance officer can read (title, when/then in plain language,
evidence, version, owner, status), then one or more *variants* — the same rule at different
severities or in different situations (e.g. KAP-CI-012 at order time vs on the dosing day). Each
variant has a condition over facts (see ``cds.facts.schema``) and the card it produces.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cds.hooks.cards import Indicator

HOOKS = (
    "order-select",
    "order-sign",
    "appointment-book",
    "encounter-start",
    "encounter-discharge",
    "patient-view",
)
Family = Literal["contraindication", "driving", "fasting", "interval", "dose", "quality", "data"]
Hook = Literal[
    "order-select",
    "order-sign",
    "appointment-book",
    "encounter-start",
    "encounter-discharge",
    "patient-view",
]
SEMVER = r"^\d+\.\d+\.\d+$"
RULE_ID = r"^KAP-(CI|DRV|FAST|INT|DOSE|QUAL|DATA)-\d{3}$"
OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "exists")
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A field test is a literal (equality) or one operator mapping: {gt: 140}, {in: [a, b]},
# {le: policy.bp_lookback_days}. The keys `any` / `all` nest groups of tests.
Scalar = str | int | float | bool
Test = Scalar | dict[str, Scalar | list[Scalar]]
Where = dict[str, Any]


class Pattern(_Model):
    """One fact the condition must find (or, under ``none``, must not find)."""

    fact: str
    alias: str | None = Field(default=None, alias="as", pattern=r"^[a-z][a-z0-9_]*$")
    where: Where = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.alias or self.fact


class Condition(_Model):
    all: list[Pattern] = Field(min_length=1)
    none: list[Pattern] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_aliases(self) -> Condition:
        names = [p.name for p in self.all]
        if len(set(names)) != len(names):
            raise ValueError("two patterns share a name; give one of them `as: <alias>`")
        return self


class SuggestionSpec(_Model):
    label: str = Field(min_length=1, max_length=120)
    action: str  # a named action builder from cds.cards.actions (checked at load)
    recommended: bool = False
    params: dict[str, str] = Field(default_factory=dict)


class LinkSpec(_Model):
    label: str
    url: str = Field(pattern=r"^https?://")
    # Shown only on cards about this drug (the SPRAVATO REMS site is no help for IV ketamine).
    for_drug: Literal["ketamine", "esketamine"] | None = None


class Variant(_Model):
    name: str = Field(pattern=r"^[a-z0-9-]+$")
    indicator: Indicator
    condition: Condition
    summary: str = Field(min_length=1)
    detail: str = Field(min_length=1)
    # Line per matching fact, appended to the detail under "Patient data".
    evidence: str | None = None
    # Site policy switch: the variant exists only when the policy flag is true ("not x" = false).
    enabled_if: str | None = Field(default=None, pattern=r"^(not )?policy\.[a-z0-9_]+$")
    override_reasons: list[str] | None = None
    suggestions: list[SuggestionSpec] = Field(default_factory=list)


class Reference(_Model):
    id: str = Field(description="catalog reference (REF-01b) or seed tag (S-002)")
    text: str = Field(min_length=1)
    url: str | None = None


class RuleFile(_Model):
    id: Annotated[str, Field(pattern=RULE_ID)]
    title: str = Field(min_length=3, max_length=100)
    family: Family
    version: Annotated[str, Field(pattern=SEMVER)]
    # shadow: evaluated and audited as "would have fired", never shown to the EHR (a silent trial).
    status: Literal["draft", "active", "shadow", "retired"]
    owner: str
    effective_date: date
    hooks: list[Hook] = Field(min_length=1)
    when: str = Field(min_length=1, description="plain-language trigger, for reviewers")
    then: str = Field(min_length=1, description="plain-language outcome, for reviewers")
    evidence: list[Reference] = Field(min_length=1)
    policy_notes: str | None = None
    status_reason: str | None = None
    suppressed_by: list[Annotated[str, Field(pattern=RULE_ID)]] = Field(default_factory=list)
    override_reasons: list[str] = Field(default_factory=list)
    links: list[LinkSpec] = Field(default_factory=list)
    variants: list[Variant] = Field(min_length=1)
    changes: list[str] = Field(default_factory=list, description="change log, newest first")

    @field_validator("hooks")
    @classmethod
    def _unique_hooks(cls, hooks: list[str]) -> list[str]:
        if len(set(hooks)) != len(hooks):
            raise ValueError("hooks are listed twice")
        return hooks

    @model_validator(mode="after")
    def _draft_needs_reason(self) -> RuleFile:
        if self.status != "active" and not self.status_reason:
            raise ValueError(f"a {self.status} rule needs status_reason")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        return self
