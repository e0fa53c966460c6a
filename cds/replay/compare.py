"""Evaluate each input with two rule sets and tally, per rule, what the candidate changes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cds.evaluator import RuleEvaluator
from cds.replay.sources import ReplayInput

EXAMPLES_PER_CHANGE = 3


@dataclass(frozen=True)
class Example:
    label: str
    before: str | None  # indicator with the current rule set; None: no card
    after: str | None


@dataclass
class RuleImpact:
    rule_id: str
    appear: int = 0
    disappear: int = 0
    change: int = 0
    unchanged: int = 0  # inputs where the rule fired the same way with both rule sets
    examples: dict[str, list[Example]] = field(
        default_factory=lambda: {"appear": [], "disappear": [], "change": []}
    )

    @property
    def changed(self) -> bool:
        return bool(self.appear or self.disappear or self.change)

    def add(self, kind: str, example: Example) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples[kind]) < EXAMPLES_PER_CHANGE:
            self.examples[kind].append(example)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "appear": self.appear,
            "disappear": self.disappear,
            "change": self.change,
            "unchanged": self.unchanged,
            "examples": {
                kind: [vars(e) for e in examples] for kind, examples in self.examples.items()
            },
        }


@dataclass
class ReplayReport:
    source: str
    baseline: str  # rule-set digests
    candidate: str
    inputs: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # exception class -> count
    rules: dict[str, RuleImpact] = field(default_factory=dict)

    @property
    def changed_rules(self) -> list[RuleImpact]:
        return [impact for _, impact in sorted(self.rules.items()) if impact.changed]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "baseline_ruleset": self.baseline,
            "candidate_ruleset": self.candidate,
            "inputs": self.inputs,
            "errors": self.errors,
            "rules": [impact.to_json() for impact in self.changed_rules],
        }


def replay(
    inputs: Iterable[ReplayInput],
    baseline: RuleEvaluator,
    candidate: RuleEvaluator,
    source: str,
) -> ReplayReport:
    report = ReplayReport(source, baseline.ruleset.digest, candidate.ruleset.digest)
    for item in inputs:
        report.inputs += 1
        try:
            before, after = _fired(baseline, item), _fired(candidate, item)
        except Exception as exc:  # one bad input must not end the replay; counted by class
            name = type(exc).__name__
            report.errors[name] = report.errors.get(name, 0) + 1
            continue
        _tally(report, item.label, before, after)
    return report


def _fired(evaluator: RuleEvaluator, item: ReplayInput) -> dict[str, str]:
    """Rule id -> indicator of what the EHR would see (shadow rules excluded)."""
    evaluation = evaluator.evaluate(
        service_id=item.service_id, context=item.context, data=item.data, now=item.now
    )
    return {fired.rule_id: fired.indicator for fired in evaluation.fired}


def _tally(report: ReplayReport, label: str, before: dict[str, str], after: dict[str, str]) -> None:
    for rule_id in sorted(before.keys() | after.keys()):
        impact = report.rules.setdefault(rule_id, RuleImpact(rule_id))
        old, new = before.get(rule_id), after.get(rule_id)
        if old == new:
            impact.unchanged += 1
        elif old is None:
            impact.add("appear", Example(label, old, new))
        elif new is None:
            impact.add("disappear", Example(label, old, new))
        else:
            impact.add("change", Example(label, old, new))
