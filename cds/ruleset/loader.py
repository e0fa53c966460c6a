"""Load a rule set directory: rule files, value sets, site policy and override reasons.

Everything is validated here, once, at start-up: a bad rule set is refused with the file, the
rule id, the field and the reason. Nothing is parsed per request.

Layout of a rule set directory::

    policy.yaml               POLICY thresholds and switches (site overrides: KAP_CDS_POLICY_FILE)
                              (site codes for value sets: KAP_CDS_VALUESET_OVERLAY, merged here)
    override-reasons.yaml     the override reason codes cards may offer
    valuesets/VS-*.yaml       value sets
    <family>/KAP-*.yaml       one rule per file, in a folder per family
    readiness.yaml            optional: the rules whose findings share one readiness card
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from cds.cards.actions import ACTIONS
from cds.errors import RuleLoadError
from cds.ruleset.checklist import (
    CHECKLIST_FILE,
    WINDOW_POLICY_KEY,
    Checklist,
    load_checklist,
)
from cds.ruleset.compiler import CompiledVariant, ConditionError, compile_variant, policy_switch
from cds.ruleset.model import HOOKS, RuleFile
from cds.ruleset.policy import Policy, load_policy
from cds.ruleset.templates import TemplateError, check_variant_templates
from cds.ruleset.valuesets import ValueSet, ValueSetFile, apply_overlay, load_valuesets

RULESET_VERSION = "1"  # bump when the rule-file format changes incompatibly
# Statuses the engine runs. Shadow rules run like active ones; the evaluator keeps their cards
# out of the response and the audit trail records them as "would have fired".
EVALUATED_STATUSES = ("active", "shadow")


@dataclass(frozen=True)
class RuleSource:
    rule: RuleFile
    path: Path
    sha256: str


@dataclass(frozen=True)
class LoadedRuleSet:
    directory: Path
    rules: dict[str, RuleSource]
    valuesets: dict[str, ValueSet]
    valueset_files: dict[str, ValueSetFile]
    policy: Policy
    override_reasons: dict[str, str]
    compiled: dict[str, list[CompiledVariant]]  # hook -> active and shadow variants
    digest: str
    checklist: Checklist | None = None  # rules/readiness.yaml

    @property
    def active_rules(self) -> list[RuleFile]:
        return [s.rule for s in self.rules.values() if s.rule.status == "active"]

    @property
    def shadow_rules(self) -> list[RuleFile]:
        return [s.rule for s in self.rules.values() if s.rule.status == "shadow"]

    def offered_reasons(self) -> dict[str, frozenset[str]]:
        """Per rule, every override reason code its cards can offer (rule and variant lists)."""
        return {
            rule_id: frozenset(
                [*src.rule.override_reasons]
                + [c for v in src.rule.variants for c in v.override_reasons or []]
            )
            for rule_id, src in self.rules.items()
        }

    def is_shadow(self, rule_id: str) -> bool:
        source = self.rules.get(rule_id)
        return source is not None and source.rule.status == "shadow"


def load_ruleset(
    directory: Path, policy_file: Path | None = None, valueset_overlay: Path | None = None
) -> LoadedRuleSet:
    directory = directory.resolve()
    if not directory.is_dir():
        raise RuleLoadError(str(directory), None, None, "rule set directory does not exist")
    valuesets, valueset_files = load_valuesets(directory / "valuesets")
    if valueset_overlay is not None:
        # The merged sets go into the digest: a card names the site mapping that produced it.
        valuesets, valueset_files = apply_overlay(valueset_files, valueset_overlay)
    policy = load_policy(directory / "policy.yaml", policy_file)
    reasons = _load_override_reasons(directory / "override-reasons.yaml")
    rules = _load_rules(directory)
    checklist = load_checklist(directory / CHECKLIST_FILE)
    if checklist is not None:
        _check_checklist(directory / CHECKLIST_FILE, checklist, rules, reasons, policy)
    compiled: dict[str, list[CompiledVariant]] = {hook: [] for hook in HOOKS}
    for source in rules.values():
        _check_references(source, rules, reasons)
        if source.rule.status not in EVALUATED_STATUSES:
            continue
        for variant in _compile_rule(source, frozenset(valuesets), policy):
            for hook in source.rule.hooks:
                compiled[hook].append(variant)
    digest = _digest(rules, valueset_files, policy, reasons, checklist)
    return LoadedRuleSet(
        directory, rules, valuesets, valueset_files, policy, reasons, compiled, digest, checklist
    )


def _load_rules(directory: Path) -> dict[str, RuleSource]:
    rules: dict[str, RuleSource] = {}
    for path in sorted(directory.glob("*/KAP-*.yaml")):
        raw_bytes = path.read_bytes()
        rule = _parse_rule(path, raw_bytes)
        if path.stem != rule.id:
            raise RuleLoadError(str(path), rule.id, "id", f"file name must be {rule.id}.yaml")
        if path.parent.name != rule.family:
            raise RuleLoadError(str(path), rule.id, "family", f"file must be in {rule.family}/")
        if rule.id in rules:
            raise RuleLoadError(str(path), rule.id, "id", "duplicate rule id")
        rules[rule.id] = RuleSource(rule, path, hashlib.sha256(raw_bytes).hexdigest())
    if not rules:
        raise RuleLoadError(str(directory), None, None, "no rule files (*/KAP-*.yaml) found")
    return rules


def _parse_rule(path: Path, raw_bytes: bytes) -> RuleFile:
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as exc:
        raise RuleLoadError(str(path), None, None, f"not valid YAML: {exc}") from None
    rule_id = raw.get("id") if isinstance(raw, dict) else None
    try:
        return RuleFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or None
        raise RuleLoadError(str(path), rule_id, loc, err["msg"]) from None


def _check_references(
    source: RuleSource, rules: dict[str, RuleSource], reasons: dict[str, str]
) -> None:
    rule = source.rule
    for other in rule.suppressed_by:
        if other not in rules:
            raise RuleLoadError(str(source.path), rule.id, "suppressed_by", f"unknown rule {other}")
    codes = list(rule.override_reasons)
    for variant in rule.variants:
        codes += variant.override_reasons or []
        for suggestion in variant.suggestions:
            if suggestion.action not in ACTIONS:
                raise RuleLoadError(
                    str(source.path),
                    rule.id,
                    f"variants.{variant.name}.suggestions",
                    f"unknown action {suggestion.action!r}",
                )
    for code in codes:
        if code not in reasons:
            raise RuleLoadError(
                str(source.path), rule.id, "override_reasons", f"unknown override reason {code}"
            )


def _check_checklist(
    path: Path,
    checklist: Checklist,
    rules: dict[str, RuleSource],
    reasons: dict[str, str],
    policy: Policy,
) -> None:
    for index, line in enumerate(checklist.lines):
        if line.rule not in rules:
            raise RuleLoadError(str(path), line.rule, f"lines[{index}].rule", "unknown rule")
    for code in checklist.override_reasons:
        if code not in reasons:
            raise RuleLoadError(
                str(path), None, "override_reasons", f"unknown override reason {code}"
            )
    if not checklist.override_reasons:
        raise RuleLoadError(
            str(path), None, "override_reasons", "a checklist card must offer override reasons"
        )
    if WINDOW_POLICY_KEY not in policy.values:
        raise RuleLoadError(str(path), None, "severity", f"policy has no {WINDOW_POLICY_KEY}")


def _compile_rule(
    source: RuleSource, valuesets: frozenset[str], policy: Policy
) -> list[CompiledVariant]:
    rule = source.rule
    compiled = []
    for index, variant in enumerate(rule.variants):
        try:
            # Conditions first: a template error is usually a symptom of a wrong condition.
            built = compile_variant(rule.id, index, variant, valuesets, policy)
            check_variant_templates(variant, policy)
            if policy_switch(variant.enabled_if, policy, f"variants[{index}].enabled_if"):
                compiled.append(built)
        except ConditionError as exc:
            raise RuleLoadError(str(source.path), rule.id, exc.field, exc.reason) from None
        except TemplateError as exc:
            raise RuleLoadError(
                str(source.path), rule.id, f"variants[{index}].{exc.field}", exc.reason
            ) from None
        if _needs_override(variant.indicator.value) and not (
            variant.override_reasons or rule.override_reasons
        ):
            raise RuleLoadError(
                str(source.path),
                rule.id,
                f"variants[{index}].override_reasons",
                "warning and critical cards must offer override reasons",
            )
    return compiled


def _needs_override(indicator: str) -> bool:
    return indicator in ("warning", "critical")


def _load_override_reasons(path: Path) -> dict[str, str]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleLoadError(str(path), None, None, f"cannot read: {exc}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise RuleLoadError(str(path), None, None, "expected a mapping of code: display")
    return {str(k): v for k, v in raw.items()}


def _digest(
    rules: dict[str, RuleSource],
    valuesets: dict[str, ValueSetFile],
    policy: Policy,
    reasons: dict[str, str],
    checklist: Checklist | None,
) -> str:
    """sha256 over everything that decides a card: rules, value sets, effective policy, and
    the checklist that groups and grades some of them."""
    material = {
        "format": RULESET_VERSION,
        "rules": {rid: src.sha256 for rid, src in sorted(rules.items())},
        "valuesets": {vid: vs.model_dump(mode="json") for vid, vs in sorted(valuesets.items())},
        "policy": dict(sorted(policy.values.items())),
        "override_reasons": dict(sorted(reasons.items())),
        "checklist": checklist.model_dump(mode="json") if checklist else None,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
