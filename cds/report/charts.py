"""Governance charts, rendered server-side as SVG with pygal.

No JavaScript and no external assets: each chart is a self-contained SVG document, embedded as a
``data:`` image, so the page's Content-Security-Policy stays strict (images may be ``data:``;
scripts and styles only the page's own). Charts show counts per rule and per service, never a
patient. Every chart has a text alternative, and the tables beside it carry the same numbers.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import pygal
from pygal.style import Style

from cds.audit.queries import BurdenStats, RuleStats, ShadowStats

# pygal appends a legacy ``sys.meta_path`` finder (for its world-map plugins, unused here) that
# has no ``find_spec``: every later failed import in the process then raises an ImportWarning.
# Take it out again; nothing of pygal's that we use needs it.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]

TOP_RULES = 12  # rules per chart: beyond that a chart stops being readable
BURDEN_BUCKETS = ("0", "1", "2", "3", "4", "5+")

_STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1d2330",
    foreground_strong="#1d2330",
    foreground_subtle="#d6dae2",
    font_family="DejaVu Sans, Verdana, sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=11,
    title_font_size=14,
    value_font_size=10,
    colors=("#1f5fa8", "#c77c02", "#9b1c1c", "#2e7d4f", "#6b4fa8", "#5b6475"),
)


def _config(chart_type: Any, title: str, **extra: object) -> Any:
    return chart_type(
        title=title,
        style=_STYLE,
        width=760,
        height=320,
        js=[],  # no script: the page's CSP allows none, and none is needed
        disable_xml_declaration=True,
        explicit_size=True,
        legend_at_bottom=True,
        print_values=False,
        show_y_guides=True,
        include_x_axis=True,  # counts start at zero: a bar of 3 must not look like nothing
        **extra,
    )


def _svg(chart: Any) -> str:
    rendered = chart.render(is_unicode=True)
    return str(rendered)


def fired_over_time(by_day: dict[str, dict[str, int]], title: str = "Cards per day") -> str:
    """Line per rule (the busiest rules), cards fired per UTC day."""
    days = sorted({day for counts in by_day.values() for day in counts})
    busiest = sorted(by_day, key=lambda r: -sum(by_day[r].values()))[:TOP_RULES]
    chart = _config(pygal.Line, title, x_label_rotation=30, dots_size=3)
    chart.x_labels = days
    for rule_id in busiest:
        chart.add(rule_id, [by_day[rule_id].get(day, 0) for day in days])
    return _svg(chart)


def override_rates(stats: Sequence[RuleStats]) -> str:
    """Share of fired cards overridden, per rule, with the most common reason in the label."""
    fired = sorted((s for s in stats if s.fired), key=lambda s: -s.overridden / s.fired)
    chart = _config(pygal.HorizontalBar, "Overridden share of cards, per rule", range=(0, 100))
    for s in fired[:TOP_RULES]:
        top = _top_reason(s)
        label = f"{s.rule_id} (top reason: {top})" if top else s.rule_id
        chart.add(label, [round(100 * s.overridden / s.fired)])
    return _svg(chart)


def _top_reason(stats: RuleStats) -> str | None:
    if not stats.override_reasons:
        return None
    first = stats.override_reasons[0]
    return first.display or first.code


def accepted_suggestions(stats: Sequence[RuleStats]) -> str:
    answered = sorted(
        (s for s in stats if s.accepted_suggestions), key=lambda s: -s.accepted_suggestions
    )
    chart = _config(pygal.Bar, "Suggestions accepted, per rule")
    chart.x_labels = [s.rule_id for s in answered[:TOP_RULES]]
    chart.add("accepted", [s.accepted_suggestions for s in answered[:TOP_RULES]])
    return _svg(chart)


def burden_histogram(burden: Sequence[BurdenStats]) -> str:
    """How many cards each KAP request got, by service: the interruptions a prescriber feels."""
    chart = _config(pygal.StackedBar, "Cards per KAP request, by service (share of requests)")
    chart.x_labels = [b.service_id for b in burden]
    for bucket in BURDEN_BUCKETS:
        chart.add(
            f"{bucket} card(s)", [round(100 * _bucket(b, bucket) / b.requests) for b in burden]
        )
    return _svg(chart)


def _bucket(burden: BurdenStats, bucket: str) -> int:
    if bucket.endswith("+"):
        floor = int(bucket[:-1])
        return sum(n for cards, n in burden.histogram if cards >= floor)
    return sum(n for cards, n in burden.histogram if cards == int(bucket))


def shadow_would_fire(shadow: Sequence[ShadowStats]) -> str:
    services = sorted({name for s in shadow for name, _ in s.by_service})
    chart = _config(pygal.StackedBar, "Shadow rules: would have fired, by service")
    chart.x_labels = [s.rule_id for s in shadow]
    for service in services:
        chart.add(service, [dict(s.by_service).get(service, 0) for s in shadow])
    return _svg(chart)


def rule_outcomes(stats: RuleStats) -> str:
    """One rule: what clinicians did with its cards."""
    chart = _config(pygal.HorizontalBar, f"{stats.rule_id}: what happened to its cards")
    chart.add("fired", [stats.fired])
    chart.add("answered", [stats.answered])
    chart.add("accepted", [stats.accepted])
    chart.add("overridden", [stats.overridden])
    chart.add("accepted and overridden", [stats.both])
    return _svg(chart)


def rule_reasons(stats: RuleStats) -> str:
    chart = _config(pygal.HorizontalBar, f"{stats.rule_id}: override reasons")
    for reason in stats.override_reasons[:TOP_RULES]:
        flag = " (not offered)" if reason.offered is False else ""
        chart.add(f"{reason.display or reason.code}{flag}", [reason.count])
    return _svg(chart)
