"""CDS Hooks 2.0 response models: what a card may and must contain.

Serialize with ``model_dump(mode="json", exclude_none=True)``: the spec forbids nulls and empty
values (the one exception is ``"cards": []``), so optional fields default to ``None``, never ``[]``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SOURCE_LABEL = "KAP Safety Rules"
RULE_TOPIC_SYSTEM = "urn:kap-cds:rule"
OVERRIDE_SYSTEM = "urn:kap-cds:override"
RULE_EXTENSION = "org.kapcds.rule"
# A consolidated card (the readiness checklist): one entry per rule it lists, in line order.
RULES_EXTENSION = "org.kapcds.rules"
CHECKLIST_TOPIC_SYSTEM = "urn:kap-cds:checklist"
# The FHIR resources behind each rule's finding ("Observation/12"): for machines, never in text.
EVIDENCE_EXTENSION = "org.kapcds.evidence"


class Indicator(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coding(_Strict):
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = Field(default=None, min_length=1)


class OverrideReason(Coding):
    # CDS Hooks 2.0: the service MUST populate display on each override reason.
    display: str = Field(min_length=1)


class Source(_Strict):
    label: str = Field(min_length=1)
    url: str | None = None
    topic: Coding | None = None


class Action(_Strict):
    type: Literal["create", "update", "delete"]
    description: str = Field(min_length=1)
    resource: dict[str, Any] | None = None
    resourceId: str | None = None  # noqa: N815 (CDS Hooks field name)

    @model_validator(mode="after")
    def _resource_for_type(self) -> Action:
        if self.type in ("create", "update") and not self.resource:
            raise ValueError(f"a {self.type} action needs a resource")
        if self.type == "delete" and not self.resourceId:
            raise ValueError("a delete action needs resourceId")
        return self


class Suggestion(_Strict):
    label: str = Field(min_length=1)
    uuid: str | None = None
    isRecommended: bool | None = None  # noqa: N815
    actions: list[Action] | None = Field(default=None, min_length=1)


class Link(_Strict):
    label: str = Field(min_length=1)
    url: str = Field(min_length=1)
    type: Literal["absolute", "smart"]
    appContext: str | None = None  # noqa: N815


class Card(_Strict):
    uuid: str
    summary: str = Field(min_length=1, max_length=139)  # spec: "<140 characters"
    detail: str | None = Field(default=None, min_length=1)
    indicator: Indicator
    source: Source
    suggestions: list[Suggestion] | None = Field(default=None, min_length=1)
    selectionBehavior: Literal["at-most-one", "any"] | None = None  # noqa: N815
    overrideReasons: list[OverrideReason] | None = Field(default=None, min_length=1)  # noqa: N815
    links: list[Link] | None = Field(default=None, min_length=1)
    extension: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _spec_rules(self) -> Card:
        if self.suggestions and not self.selectionBehavior:
            raise ValueError("selectionBehavior is required when a card has suggestions")
        if self.indicator is not Indicator.info and not self.overrideReasons:
            raise ValueError("critical and warning cards carry overrideReasons")
        return self


class CardsResponse(_Strict):
    cards: list[Card]
    systemActions: list[Action] | None = Field(default=None, min_length=1)  # noqa: N815

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        body.setdefault("cards", [])
        return body


def listed_rules(card: dict[str, Any]) -> list[tuple[str, str]]:
    """(rule id, indicator) of each rule a card (as JSON) stands for: the entries of a
    consolidated card, else the one rule of its ``org.kapcds.rule``."""
    extension = card.get("extension") or {}
    entries = extension.get(RULES_EXTENSION)
    if isinstance(entries, list):
        return [(str(e["id"]), str(e["indicator"])) for e in entries]
    rule = extension.get(RULE_EXTENSION) or {}
    return [(str(rule.get("id", "")), str(card.get("indicator", "")))]


def fired_by_rule(cards: list[dict[str, Any]]) -> dict[str, str]:
    """rule id -> indicator over a response's cards (the strongest if a rule shows twice)."""
    rank = {"info": 0, "warning": 1, "critical": 2}
    fired: dict[str, str] = {}
    for card in cards:
        for rule_id, indicator in listed_rules(card):
            if rank.get(indicator, 0) >= rank.get(fired.get(rule_id, "info"), 0):
                fired[rule_id] = indicator
    return fired


def fired_variants(cards: list[dict[str, Any]]) -> dict[str, str]:
    """rule id -> the variant that fired, from the cards' rule extensions."""
    variants: dict[str, str] = {}
    for card in cards:
        extension = card.get("extension") or {}
        entries = extension.get(RULES_EXTENSION) or [extension.get(RULE_EXTENSION) or {}]
        for entry in entries:
            if entry.get("id") and entry.get("variant"):
                variants[str(entry["id"])] = str(entry["variant"])
    return variants
