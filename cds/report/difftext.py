"""``kap-cds rules diff`` output: Markdown-flavoured text that reads well in a terminal and pastes
into a change-review ticket."""

from __future__ import annotations

from typing import Any

from cds.report.diff import RuleChange, RuleSetDiff


def render_diff(diff: RuleSetDiff) -> str:
    lines = [
        f"# Rule set diff: {diff.old_label} -> {diff.new_label}",
        "",
        f"old digest: {diff.old_digest}",
        f"new digest: {diff.new_digest}",
    ]
    if diff.old_digest == diff.new_digest:
        lines += ["", "No change: both rule sets have the same digest."]
    lines += _rule_list("Added rules", diff.added)
    lines += _rule_list("Removed rules", diff.removed)
    lines += ["", f"## Changed rules ({len(diff.changed)})"]
    for change in diff.changed:
        lines += _change(change)
    lines += _plain("Value sets", diff.valuesets)
    lines += _plain("Policy defaults", diff.policy)
    lines += _plain("Override reasons", diff.override_reasons)
    lines += ["", _verdict(diff)]
    return "\n".join(lines) + "\n"


def _rule_list(title: str, entries: tuple[dict[str, Any], ...]) -> list[str]:
    lines = ["", f"## {title} ({len(entries)})"]
    lines += [
        f"- {e['id']} {e['version']} ({e['status']}, {e['family']}): {e['title']}" for e in entries
    ]
    return lines


def _change(change: RuleChange) -> list[str]:
    verdict = "BUMP POLICY VIOLATED" if change.violates else "version bump ok"
    needed = change.needed or "none"
    done = change.done or ("none (version not increased)")
    lines = [
        "",
        f"### {change.rule_id} {change.old_version} -> {change.new_version}: {verdict}",
        f"- parts changed: {', '.join(change.parts) or 'none'}",
        f"- fields changed: {', '.join(change.fields) or 'formatting only'}",
        f"- bump required by the policy: {needed}; bump made: {done}",
    ]
    if change.violates:
        lines.append(f"- fix: bump the {needed} version and add a `changes:` line")
    fence = "```"
    while fence in change.yaml_diff:
        fence += "`"
    lines += ["", f"{fence}diff", change.yaml_diff.rstrip("\n"), fence]
    return lines


def _plain(title: str, items: tuple[str, ...]) -> list[str]:
    return ["", f"## {title} ({len(items)})", *(f"- {item}" for item in items)]


def _verdict(diff: RuleSetDiff) -> str:
    bad = diff.violations
    if not bad:
        return "Result: every changed rule satisfies the bump policy."
    ids = ", ".join(c.rule_id for c in bad)
    return f"Result: {len(bad)} rule(s) violate the bump policy: {ids}"
