"""What the compliance report says, as a ``Document``: the front page, then one section per rule.

Plain text in, plain text out: renderers escape. Functions here decide content and order only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from cds.audit.queries import RuleStats
from cds.report import charts
from cds.report.behaviour import Behaviour, is_fatigued
from cds.report.conditions import ConditionText, policy_display, valueset_ids
from cds.report.doc import (
    Block,
    Cell,
    Code,
    Document,
    Fields,
    Figure,
    Heading,
    Link,
    Para,
    Strong,
    Table,
    cell,
)
from cds.report.fixtures import FixtureResult
from cds.report.rules import rule_blocks
from cds.ruleset.loader import LoadedRuleSet
from cds.ruleset.model import RuleFile

INDICATORS = ("info", "warning", "critical")
FAMILIES = ("contraindication", "driving", "fasting", "interval", "dose", "quality", "data")


@dataclass(frozen=True)
class ReportInput:
    ruleset: LoadedRuleSet
    generated_at: datetime
    fixtures: dict[str, list[FixtureResult]]
    behaviour: Behaviour | None = None  # None: behaviour was not asked for (catalog only)


def build_report(data: ReportInput, title: str = "KAP rule set report") -> Document:
    doc = Document(title)
    doc.add(Heading(1, title, "top"))
    doc.add(*front_page(data))
    if data.behaviour is not None:
        doc.add(*behaviour_blocks(data.behaviour, data.ruleset))
    doc.add(*catalog_blocks(data))
    return doc


def catalog_blocks(data: ReportInput) -> list[Block]:
    """The rule index and every rule's section (what the governance page caches)."""
    ruleset = data.ruleset
    blocks: list[Block] = [
        *checklist_blocks(ruleset),
        Heading(2, "Rules", "rules"),
        rule_index(ruleset),
    ]
    texts = ConditionText(ruleset.policy, {k: v.title for k, v in ruleset.valueset_files.items()})
    for rule_id, source in sorted(ruleset.rules.items()):
        stats = data.behaviour.of(rule_id) if data.behaviour and data.behaviour.available else None
        blocks.append(
            rule_blocks(
                source, ruleset, texts, data.fixtures.get(rule_id, []), stats, data.behaviour
            )
        )
    return blocks


def checklist_blocks(ruleset: LoadedRuleSet) -> list[Block]:
    """The readiness checklist (rules/readiness.yaml): which rules share one card and how
    urgent each line is; cards of the checklist link here (anchor = the checklist id)."""
    checklist = ruleset.checklist
    if checklist is None:
        return []
    window = ruleset.policy.values.get("readiness_critical_hours")
    rows = tuple(
        (
            cell(str(number)),
            _rule_links([line.rule]),
            cell(line.label),
            cell((line.severity or checklist.severity).near.value),
            cell((line.severity or checklist.severity).later.value),
        )
        for number, line in enumerate(checklist.lines, start=1)
    )
    return [
        Heading(2, f"Readiness checklist — {checklist.title}", checklist.id),
        Para(
            cell(
                "These rules do not show cards of their own: the gaps they find in one request "
                "are the lines of one card, in this order, with their suggestions. Each rule is "
                "audited as fired and feedback on the card counts for each. A line is 'near' at "
                f"the start of the dosing encounter, or for an order or booking of a dose within "
                f"{window} h (policy readiness_critical_hours); 'later' otherwise. The card's "
                "severity is the highest of its lines."
            )
        ),
        Table(("line", "rule", "gap", "near", "later"), rows),
    ]


# ---- front page ------------------------------------------------------------------------------


def front_page(data: ReportInput) -> list[Block]:
    ruleset = data.ruleset
    rules = [s.rule for s in ruleset.rules.values()]
    return [
        Fields(
            (
                ("Rule-set digest", cell(Code(ruleset.digest))),
                ("Generated", cell(data.generated_at.isoformat(timespec="seconds"))),
                ("Rule set", cell(Code(str(ruleset.directory)))),
                ("Rules", cell(_rule_counts(ruleset))),
                ("Value sets", cell(str(len(ruleset.valueset_files)))),
                ("Site policy", cell(_site_policy_summary(ruleset))),
            )
        ),
        Heading(2, "Counts by family and severity", "counts"),
        Para(
            cell(
                "Active rules per family; a rule is counted under every severity one of its "
                "variants can produce."
            ),
            "note",
        ),
        _counts_table(rules),
        *_status_blocks(rules),
        *_verify_blocks(ruleset),
        *_policy_blocks(ruleset),
        *_fixture_summary(ruleset, data.fixtures),
    ]


def _site_policy_summary(ruleset: LoadedRuleSet) -> str:
    changed = sorted(ruleset.policy.overridden)
    if not changed:
        return "none (shipped defaults)"
    return f"{len(changed)} value(s) changed by the site policy file: {', '.join(changed)}"


def _counts_table(rules: list[RuleFile]) -> Table:
    rows = []
    for family in FAMILIES:
        members = [r for r in rules if r.family == family]
        active = [r for r in members if r.status == "active"]
        by_indicator = Counter(i for r in active for i in {v.indicator.value for v in r.variants})
        rows.append(
            (
                cell(family),
                cell(str(len(members))),
                cell(str(len(active))),
                *(cell(str(by_indicator[i])) for i in INDICATORS),
            )
        )
    total = [r for r in rules if r.status == "active"]
    totals = Counter(i for r in total for i in {v.indicator.value for v in r.variants})
    rows.append(
        (
            cell(Strong("all")),
            cell(str(len(rules))),
            cell(str(len(total))),
            *(cell(str(totals[i])) for i in INDICATORS),
        )
    )
    return Table(("family", "rules", "active", *INDICATORS), tuple(rows))


def _rule_counts(ruleset: LoadedRuleSet) -> str:
    shadow = len(ruleset.shadow_rules)
    in_shadow = f", {shadow} in shadow (evaluated, not shown)" if shadow else ""
    return f"{len(ruleset.rules)} ({len(ruleset.active_rules)} active{in_shadow})"


def _status_blocks(rules: list[RuleFile]) -> list[Block]:
    inactive = sorted((r for r in rules if r.status != "active"), key=lambda r: r.id)
    blocks: list[Block] = [
        Heading(2, "Rules not shown to clinicians (draft, shadow, retired)", "inactive")
    ]
    if not inactive:
        return [*blocks, Para(cell("None: every rule is active."))]
    rows = tuple(
        (cell(Link(r.id, f"#{r.id}")), cell(r.title), cell(r.status), cell(r.status_reason or ""))
        for r in inactive
    )
    return [*blocks, Table(("rule", "title", "status", "why"), rows)]


def _verify_blocks(ruleset: LoadedRuleSet) -> list[Block]:
    users = _valueset_users(ruleset)
    rows = []
    for vs_id, vs in sorted(ruleset.valueset_files.items()):
        for entry in vs.include:
            if entry.confidence != "V":
                continue
            rows.append(
                (
                    cell(vs_id),
                    _rule_links(users.get(vs_id, [])),
                    cell(entry.system),
                    cell(Code(entry.code or f"{entry.prefix}*")),
                    cell(entry.display or ""),
                    cell(entry.note or ""),
                )
            )
    blocks: list[Block] = [Heading(2, "Codes to verify before go-live (confidence V)", "verify")]
    if not rows:
        return [*blocks, Para(cell("No value set holds a code marked V."))]
    header = ("value set", "used by", "system", "code / prefix", "display", "note")
    return [*blocks, Table(header, tuple(rows))]


def _valueset_users(ruleset: LoadedRuleSet) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {}
    for rule_id, source in sorted(ruleset.rules.items()):
        for vs_id in valueset_ids(source.rule, ruleset.valueset_files):
            users.setdefault(vs_id, []).append(rule_id)
    return users


def _rule_links(rule_ids: list[str]) -> Cell:
    parts: list[str | Link] = []
    for index, rule_id in enumerate(rule_ids):
        if index:
            parts.append(", ")
        parts.append(Link(rule_id, f"#{rule_id}"))
    return tuple(parts) if parts else cell("fact builders")


def _policy_blocks(ruleset: LoadedRuleSet) -> list[Block]:
    policy = ruleset.policy
    rows = []
    for key, entry in policy.entries.items():
        if entry.basis != "POLICY":
            continue
        rows.append(_policy_row(ruleset, key))
    blocks: list[Block] = [
        Heading(2, "POLICY values awaiting sign-off", "policy"),
        Para(
            cell(
                "Local defaults the clinical catalog marks POLICY: the medical director confirms "
                "or changes each one. A site value is shown next to the shipped default."
            ),
            "note",
        ),
    ]
    header = ("key", "in effect", "default", "source", "rules", "note")
    blocks.append(Table(header, tuple(rows)) if rows else Para(cell("No POLICY values.")))
    other = sorted(k for k in policy.overridden if policy.entries[k].basis != "POLICY")
    if other:
        blocks.append(
            Para(
                cell(
                    "The site policy file also changes values with a quoted source: ",
                    ", ".join(other),
                    ".",
                ),
                "warn",
            )
        )
        blocks.append(Table(header, tuple(_policy_row(ruleset, k) for k in other)))
    return blocks


def _policy_row(ruleset: LoadedRuleSet, key: str) -> tuple[Cell, ...]:
    policy = ruleset.policy
    entry = policy.entries[key]
    site = key in policy.overridden
    return (
        cell(Code(key)),
        cell(
            Strong(policy_display(policy.values[key], entry.unit))
            if site
            else policy_display(policy.values[key], entry.unit)
        ),
        cell(policy_display(entry.value, entry.unit)),
        cell("site policy" if site else "default"),
        _rule_links(sorted(entry.rules)),
        cell(entry.note),
    )


def _fixture_summary(
    ruleset: LoadedRuleSet, fixtures: dict[str, list[FixtureResult]]
) -> list[Block]:
    counts: Counter[str] = Counter(
        f.status for rule_id in ruleset.rules for f in fixtures.get(rule_id, [])
    )
    statuses = ("pass", "fail", "error", "not run")
    summary = ", ".join(f"{counts[s]} {s}" for s in statuses if counts[s])
    blocks: list[Block] = [
        Heading(2, "Fixtures", "fixtures"),
        Para(
            cell(summary or "No fixtures found."),
            "bad" if counts["fail"] or counts["error"] else "",
        ),
    ]
    missing = [
        rule_id
        for rule_id, src in sorted(ruleset.rules.items())
        if src.rule.status == "active" and not _has_both(fixtures.get(rule_id, []))
    ]
    if missing:
        blocks.append(
            Para(
                cell(
                    "Active rules without both a fires- and a quiet- fixture: ",
                    *_rule_links(missing),
                ),
                "warn",
            )
        )
    return blocks


def _has_both(results: list[FixtureResult]) -> bool:
    names = [r.name for r in results]
    return any(n.startswith("fires-") for n in names) and any(n.startswith("quiet-") for n in names)


def rule_index(ruleset: LoadedRuleSet) -> Table:
    rows = []
    for rule_id, source in sorted(ruleset.rules.items()):
        rule = source.rule
        severities = ", ".join(
            sorted({v.indicator.value for v in rule.variants}, key=INDICATORS.index)
        )
        rows.append(
            (
                cell(Link(rule_id, f"#{rule_id}")),
                cell(rule.title),
                cell(rule.family),
                cell(rule.version),
                cell(rule.status),
                cell(severities),
            )
        )
    header = ("rule", "title", "family", "version", "status", "severity")
    return Table(header, tuple(rows), "index")


# ---- behaviour -------------------------------------------------------------------------------


def behaviour_blocks(behaviour: Behaviour, ruleset: LoadedRuleSet) -> list[Block]:
    period = (
        f"since {behaviour.since.isoformat(timespec='seconds')}"
        if behaviour.since
        else "everything recorded"
    )
    blocks: list[Block] = [
        Heading(2, "Behaviour in practice", "behaviour"),
        Para(
            cell(
                f"From the audit store, {period} (read "
                f"{behaviour.computed_at.isoformat(timespec='seconds')})."
            ),
            "note",
        ),
    ]
    if not behaviour.available:
        return [
            *blocks,
            Para(cell(f"Behaviour figures are not included: {behaviour.error}."), "warn"),
        ]
    active = [r.id for r in ruleset.active_rules]
    never = behaviour.never_fired(sorted(active))
    tired = sorted(s.rule_id for s in behaviour.fatigued())
    blocks.append(
        Para(
            cell("Never fired in the period: ", *(_rule_links(never) if never else cell("none"))),
            "warn" if never else "",
        )
    )
    blocks.append(
        Para(
            cell(
                "Overridden in at least 80% of firings (alert fatigue): ",
                *(_rule_links(tired) if tired else cell("none")),
            ),
            "bad" if tired else "",
        )
    )
    blocks.append(_behaviour_table(behaviour, ruleset))
    blocks += chart_blocks(behaviour)
    blocks += shadow_blocks(behaviour, ruleset)
    gone = behaviour.unknown_rules(ruleset.rules)
    if gone:
        blocks.append(
            Para(cell("Also in the trail but not in this rule set: ", ", ".join(gone)), "note")
        )
    return blocks


def chart_blocks(behaviour: Behaviour) -> list[Block]:
    """The figures as charts (the tables above and below carry the same numbers)."""
    stats = list(behaviour.stats.values())
    blocks: list[Block] = [Heading(3, "Charts", "charts")]
    if not stats and not behaviour.burden:
        return [*blocks, Para(cell("Nothing recorded in the period yet."), "note")]
    if behaviour.by_day:
        blocks.append(
            Figure(
                charts.fired_over_time(behaviour.by_day),
                "Cards fired per rule per day (UTC), the busiest rules.",
                "Line chart of cards fired per day for the busiest rules.",
            )
        )
    if behaviour.burden:
        blocks.append(
            Figure(
                charts.burden_histogram(behaviour.burden),
                "Cards per KAP request by service: the interruptions a prescriber feels. "
                + "; ".join(f"{b.service_id}: mean {b.mean:.1f}" for b in behaviour.burden),
                "Stacked bars: share of requests with 0, 1, 2, 3, 4 or 5+ cards per service.",
            )
        )
    if any(s.fired for s in stats):
        blocks.append(
            Figure(
                charts.override_rates(stats),
                "Share of each rule's cards that clinicians overrode, with the top reason.",
                "Horizontal bars: override share per rule.",
            )
        )
    if any(s.accepted_suggestions for s in stats):
        blocks.append(
            Figure(
                charts.accepted_suggestions(stats),
                "Suggestions clinicians accepted, per rule.",
                "Bars: accepted suggestions per rule.",
            )
        )
    return blocks


def rule_chart_blocks(behaviour: Behaviour, rule_id: str) -> list[Block]:
    """One rule's figures, for its governance page."""
    blocks: list[Block] = [Heading(3, "Figures", "figures")]
    stats = behaviour.of(rule_id)
    shadow = behaviour.shadow.get(rule_id)
    days = behaviour.by_day.get(rule_id)
    if days:
        blocks.append(
            Figure(
                charts.fired_over_time({rule_id: days}, f"{rule_id}: cards per day"),
                "Cards this rule produced per day (UTC).",
                f"Line chart of {rule_id} cards per day.",
            )
        )
    if stats is not None and stats.fired:
        blocks.append(
            Figure(
                charts.rule_outcomes(stats),
                "Fired, answered, accepted, overridden, and both (accepted then overridden or "
                "the other way round).",
                f"{rule_id}: fired {stats.fired}, accepted {stats.accepted}, "
                f"overridden {stats.overridden}.",
            )
        )
    if stats is not None and stats.override_reasons:
        blocks.append(
            Figure(
                charts.rule_reasons(stats),
                "Override reasons given (a reason the card did not offer is marked).",
                f"{rule_id} override reasons: {reason_text(stats)}.",
            )
        )
    if shadow is not None:
        blocks.append(
            Para(
                cell(
                    f"In shadow: would have fired {shadow.would_fire} times ("
                    + ", ".join(f"{name} {n}" for name, n in shadow.by_service)
                    + ")."
                )
            )
        )
    if len(blocks) == 1:
        blocks.append(Para(cell("No card from this rule in the period."), "note"))
    return blocks


def shadow_blocks(behaviour: Behaviour, ruleset: LoadedRuleSet) -> list[Block]:
    """Shadow rules beside the active ones: how often each would have fired, and where."""
    shadow_ids = sorted(r.id for r in ruleset.shadow_rules)
    if not shadow_ids and not behaviour.shadow:
        return []
    blocks: list[Block] = [
        Heading(3, "Shadow rules (evaluated, never shown to the EHR)", "shadow"),
    ]
    counted = [behaviour.shadow[r] for r in sorted(behaviour.shadow)]
    if counted:
        blocks.append(
            Figure(
                charts.shadow_would_fire(counted),
                "How often each shadow rule would have fired, by service.",
                "Stacked bars: would-have-fired counts per shadow rule and service.",
            )
        )
    rows = []
    for rule_id in sorted(set(shadow_ids) | set(behaviour.shadow)):
        found = behaviour.shadow.get(rule_id)
        rows.append(
            (
                cell(Link(rule_id, f"#{rule_id}")),
                cell(str(found.would_fire if found else 0)),
                cell(", ".join(f"{name} {n}" for name, n in found.by_service) if found else ""),
                cell(", ".join(f"{name} {n}" for name, n in found.by_indicator) if found else ""),
                cell("" if rule_id in shadow_ids else "no longer in shadow"),
            )
        )
    header = ("rule", "would have fired", "by service", "by severity", "note")
    return [*blocks, Table(header, tuple(rows))]


def _behaviour_table(behaviour: Behaviour, ruleset: LoadedRuleSet) -> Table:
    # Only rules that fired: the ones that did not are listed (with links) just above.
    rows = [
        _behaviour_row(stats)
        for rule_id, stats in sorted(behaviour.stats.items())
        if stats.fired and rule_id in ruleset.rules
    ]
    header = (
        "rule",
        "fired",
        "accepted",
        "overridden",
        "both",
        "override share",
        "override reasons",
        "flag",
    )
    return Table(header, tuple(rows))


def reason_text(stats: RuleStats) -> str:
    """Override reasons with counts; a reason the card did not offer is marked."""
    return "; ".join(
        " ".join(
            p
            for p in (
                r.code or "?",
                r.display,
                "(not offered)" if r.offered is False else None,
                f"({r.count})",
            )
            if p
        )
        for r in stats.override_reasons
    )


def _behaviour_row(stats: RuleStats) -> tuple[Cell, ...]:
    return (
        cell(Link(stats.rule_id, f"#{stats.rule_id}")),
        cell(str(stats.fired)),
        cell(str(stats.accepted)),
        cell(str(stats.overridden)),
        cell(str(stats.both)),
        cell(f"{stats.overridden / stats.fired:.0%}"),
        cell(reason_text(stats)),
        cell(_flags(stats)),
    )


def _flags(stats: RuleStats) -> str:
    flags = ["alert fatigue"] if is_fatigued(stats) else []
    if stats.unoffered_reasons:
        flags.append("reasons not offered by the card")
    return ", ".join(flags)
