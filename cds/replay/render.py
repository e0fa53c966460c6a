"""The replay report for people (Markdown, pastes into a change review) and for machines."""

from __future__ import annotations

import orjson

from cds.replay.compare import Example, ReplayReport

KIND_TITLES = {
    "appear": "would appear",
    "disappear": "would disappear",
    "change": "would change severity",
}


def render_json(report: ReplayReport) -> str:
    return orjson.dumps(
        report.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
    ).decode()


def render_text(report: ReplayReport) -> str:
    lines = [
        f"Impact replay over {report.inputs} inputs ({report.source})",
        f"current rule set {report.baseline[:12]}, candidate {report.candidate[:12]}",
        "",
    ]
    if report.errors:
        failed = ", ".join(f"{name} ({n})" for name, n in sorted(report.errors.items()))
        lines += [f"Inputs that could not be evaluated: {failed}", ""]
    changed = report.changed_rules
    if not changed:
        lines.append("No card would change.")
        return "\n".join(lines) + "\n"
    lines += [
        "| rule | would appear | would disappear | would change severity | unchanged |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {i.rule_id} | {i.appear} | {i.disappear} | {i.change} | {i.unchanged} |"
        for i in changed
    ]
    for impact in changed:
        lines += ["", f"{impact.rule_id}:"]
        for kind, examples in impact.examples.items():
            lines += [f"- {KIND_TITLES[kind]}: {_example(e)}" for e in examples]
    return "\n".join(lines) + "\n"


def _example(example: Example) -> str:
    return f"{example.label} ({example.before or 'no card'} → {example.after or 'no card'})"
