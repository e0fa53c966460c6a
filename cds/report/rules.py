"""One rule's section of the report: header, when/then, conditions, thresholds, value sets,
evidence, cards, override reasons, suppressions, fixtures, digest and behaviour."""

from __future__ import annotations

from cds.audit.queries import RuleStats
from cds.report.behaviour import Behaviour, is_fatigued
from cds.report.conditions import ConditionText, policy_display, policy_keys, valueset_ids
from cds.report.doc import (
    Block,
    Bullets,
    Cell,
    Code,
    Fields,
    Heading,
    Link,
    Literal,
    Para,
    Section,
    Table,
    cell,
)
from cds.report.fixtures import FixtureResult
from cds.ruleset.loader import LoadedRuleSet, RuleSource
from cds.ruleset.model import RuleFile, Variant
from cds.ruleset.valuesets import CodeEntry, ValueSetFile

_SAFE_SCHEMES = ("https://", "http://")


def safe_link(label: str, url: str | None) -> Cell:
    """A link only for http(s) URLs: a ``javascript:`` URL in a rule file stays plain text."""
    if url and url.lower().startswith(_SAFE_SCHEMES):
        return cell(Link(label, url))
    return cell(f"{label} ({url})" if url else label)


def rule_blocks(
    source: RuleSource,
    ruleset: LoadedRuleSet,
    texts: ConditionText,
    fixtures: list[FixtureResult],
    stats: RuleStats | None,
    behaviour: Behaviour | None,
) -> Section:
    rule = source.rule
    blocks: list[Block] = [
        Heading(2, f"{rule.id} — {rule.title}", None),
        _header(source, ruleset),
        Heading(3, "When", None),
        Para(cell(rule.when.strip())),
        Heading(3, "Then", None),
        Para(cell(rule.then.strip())),
        *_conditions(rule, texts),
        *_thresholds(rule, ruleset),
        *_valuesets(rule, ruleset),
        *_evidence(rule),
        *_cards(rule, ruleset),
        *_override_reasons(rule, ruleset),
        *_suppressions(rule, ruleset),
        *_fixtures(fixtures),
    ]
    if behaviour is not None and behaviour.available:
        blocks += _behaviour(stats)
    return Section(rule.id, tuple(blocks), (rule.id, rule.family, rule.title, rule.status))


def _header(source: RuleSource, ruleset: LoadedRuleSet) -> Fields:
    rule = source.rule
    status = rule.status if rule.status == "active" else f"{rule.status}: {rule.status_reason}"
    severities = "; ".join(f"{v.name}: {v.indicator.value}" for v in rule.variants)
    path = source.path.relative_to(ruleset.directory).as_posix()
    pairs: list[tuple[str, Cell]] = [
        ("Version", cell(rule.version)),
        ("Status", cell(status)),
        ("Owner", cell(rule.owner)),
        ("Effective date", cell(rule.effective_date.isoformat())),
        ("Family", cell(rule.family)),
        ("Hooks", cell(", ".join(rule.hooks))),
        ("Severity per variant", cell(severities)),
        ("File", cell(Code(path))),
        ("Content digest (sha256)", cell(Code(source.sha256))),
    ]
    if rule.changes:
        pairs.append(("Latest change", cell(rule.changes[0])))
    return Fields(tuple(pairs))


def _conditions(rule: RuleFile, texts: ConditionText) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Conditions", None)]
    for variant in rule.variants:
        blocks.append(Para(cell(f"Variant {variant.name} ({variant.indicator.value}):")))
        switch = texts.switch(variant.enabled_if)
        lines = [cell(line) for line in texts.condition(variant.condition)]
        if switch:
            lines.insert(0, cell(switch))
        blocks.append(Bullets(tuple(lines)))
    return blocks


def _thresholds(rule: RuleFile, ruleset: LoadedRuleSet) -> list[Block]:
    policy = ruleset.policy
    keys = policy_keys(rule, policy)
    blocks: list[Block] = [Heading(3, "Thresholds and policy values in effect", None)]
    if rule.policy_notes:
        blocks.append(Para(cell(rule.policy_notes.strip()), "note"))
    if not keys:
        return [*blocks, Para(cell("This rule reads no policy value."))]
    rows = []
    for key in keys:
        entry = policy.entries[key]
        site = key in policy.overridden
        source = (
            f"site policy (default {policy_display(entry.value, entry.unit)})"
            if site
            else "default"
        )
        rows.append(
            (
                cell(Code(key)),
                cell(policy_display(policy.values[key], entry.unit)),
                cell(source),
                cell(entry.basis),
                cell(entry.note),
            )
        )
    return [*blocks, Table(("key", "value", "source", "basis", "note"), tuple(rows))]


def _valuesets(rule: RuleFile, ruleset: LoadedRuleSet) -> list[Block]:
    ids = valueset_ids(rule, ruleset.valueset_files)
    blocks: list[Block] = [Heading(3, "Value sets", None)]
    if not ids:
        return [*blocks, Para(cell("The conditions name no value set."))]
    for vs_id in ids:
        blocks += _valueset(ruleset.valueset_files[vs_id])
    return blocks


def _valueset(vs: ValueSetFile) -> list[Block]:
    rows = [_code_row(e, "include") for e in vs.include]
    rows += [_code_row(e, "exclude") for e in vs.exclude]
    blocks: list[Block] = [
        Para(cell(Code(vs.id), f" — {vs.title}: {vs.description.strip()}")),
        Table(("", "system", "code / prefix", "display", "confidence", "note"), tuple(rows)),
    ]
    if vs.names:
        blocks.append(
            Para(cell("Also matched by ingredient name in the text: ", ", ".join(vs.names)), "note")
        )
    return blocks


def _code_row(entry: CodeEntry, kind: str) -> tuple[Cell, ...]:
    code = entry.code if entry.code is not None else f"{entry.prefix}* (prefix)"
    return (
        cell(kind),
        cell(entry.system),
        cell(Code(code)),
        cell(entry.display or ""),
        cell(entry.confidence),
        cell(entry.note or ""),
    )


def _evidence(rule: RuleFile) -> list[Block]:
    items = [
        cell(
            Code(ref.id),
            " ",
            ref.text,
            *(((" — ",) + safe_link("source", ref.url)) if ref.url else ()),
        )
        for ref in rule.evidence
    ]
    blocks: list[Block] = [Heading(3, "Evidence", None), Bullets(tuple(items))]
    if rule.links:
        blocks.append(Bullets(tuple(safe_link(link.label, link.url) for link in rule.links)))
    return blocks


def _cards(rule: RuleFile, ruleset: LoadedRuleSet) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Cards", None)]
    for variant in rule.variants:
        blocks += _card(rule, variant, ruleset)
    return blocks


def _card(rule: RuleFile, variant: Variant, ruleset: LoadedRuleSet) -> list[Block]:
    reasons = (
        variant.override_reasons if variant.override_reasons is not None else rule.override_reasons
    )
    suggestions = "; ".join(
        f"{s.label} ({s.action}{', recommended' if s.recommended else ''})"
        for s in variant.suggestions
    )
    pairs: list[tuple[str, Cell]] = [
        ("Summary", cell(variant.summary)),
        ("Evidence line", cell(variant.evidence or "(none)")),
        ("Override reasons", cell(", ".join(reasons) or "(none)")),
        ("Suggestions", cell(suggestions or "(none)")),
    ]
    return [
        Para(cell(f"Variant {variant.name} ({variant.indicator.value})")),
        Fields(tuple(pairs)),
        Literal(variant.detail.rstrip("\n"), "markdown"),
    ]


def _override_reasons(rule: RuleFile, ruleset: LoadedRuleSet) -> list[Block]:
    codes: list[str] = list(rule.override_reasons)
    for variant in rule.variants:
        codes += [c for c in variant.override_reasons or [] if c not in codes]
    blocks: list[Block] = [Heading(3, "Override reasons", None)]
    if not codes:
        return [*blocks, Para(cell("None offered."))]
    rows = tuple(
        (cell(Code(c)), cell(ruleset.override_reasons.get(c, "(unknown code)"))) for c in codes
    )
    return [*blocks, Table(("code", "display"), rows)]


def _suppressions(rule: RuleFile, ruleset: LoadedRuleSet) -> list[Block]:
    suppresses = sorted(
        rid for rid, src in ruleset.rules.items() if rule.id in src.rule.suppressed_by
    )
    by = ", ".join(rule.suppressed_by) or "no rule"
    return [
        Heading(3, "Suppressions", None),
        Para(
            cell(
                f"Not shown when these fire: {by}. "
                f"Suppresses: {', '.join(suppresses) or 'no rule'}."
            )
        ),
    ]


def _fixtures(results: list[FixtureResult]) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Fixtures", None)]
    if not results:
        return [*blocks, Para(cell("No fixtures."), "bad")]
    rows = tuple(
        (
            cell(Code(r.name)),
            cell(r.description),
            cell(r.status.upper()),
            cell("; ".join(r.problems)),
        )
        for r in results
    )
    return [*blocks, Table(("case", "description", "result", "problems"), rows)]


def _behaviour(stats: RuleStats | None) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Behaviour in the period", None)]
    if stats is None or stats.fired == 0:
        return [*blocks, Para(cell("Never fired in the period."), "warn")]
    reasons = "; ".join(
        f"{r.code or '?'}: {r.display or ''} ({r.count})" for r in stats.override_reasons
    )
    pairs: list[tuple[str, Cell]] = [
        ("Fired", cell(str(stats.fired))),
        ("Accepted", cell(str(stats.accepted))),
        ("Overridden", cell(f"{stats.overridden} ({stats.overridden / stats.fired:.0%})")),
        ("Override reasons", cell(reasons or "(none)")),
        ("Versions seen", cell(", ".join(stats.versions))),
    ]
    blocks.append(Fields(tuple(pairs)))
    if is_fatigued(stats):
        blocks.append(
            Para(cell("Overridden in at least 80% of firings: review for alert fatigue."), "bad")
        )
    return blocks
