"""Cards for people reading a terminal: indicator, rule, summary and why, most severe first.

``--format json`` prints the CDS Hooks response instead; this is the default for people.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

RULE_EXTENSION = "org.kapcds.rule"
RULES_EXTENSION = "org.kapcds.rules"
SEVERITY = {"critical": 0, "warning": 1, "info": 2}
WIDTH = 100
_INDENT = " " * 11
# Markdown emphasis and code marks: a terminal shows them as noise.
_MARKS = re.compile(r"(\*\*|__|`)")


def rule_ids(card: Mapping[str, Any]) -> list[str]:
    extension = card.get("extension") or {}
    if RULES_EXTENSION in extension:
        return [str(entry.get("id")) for entry in extension[RULES_EXTENSION]]
    if RULE_EXTENSION in extension:
        return [str(extension[RULE_EXTENSION].get("id"))]
    return []


def _items(detail: str) -> list[tuple[bool, str]]:
    """(is a bullet, text) per paragraph or list item: Markdown's soft line breaks joined."""
    items: list[tuple[bool, str]] = []
    continues = False
    for raw in _MARKS.sub("", detail).splitlines():
        text = raw.strip().strip("_") if raw.strip().startswith("_") else raw.strip()
        if not text:
            continues = False
        elif text.startswith(("- ", "* ")):
            items.append((True, text[2:]))
            continues = True
        elif continues:
            bullet, before = items[-1]
            items[-1] = (bullet, f"{before} {text}")
        else:
            items.append((False, text))
            continues = True
    return items


def _why(detail: str) -> list[str]:
    lines: list[str] = []
    for bullet, body in _items(detail):
        lines += textwrap.wrap(
            body,
            WIDTH,
            initial_indent=_INDENT + ("- " if bullet else ""),
            subsequent_indent=_INDENT + ("  " if bullet else ""),
        )
    return lines


def render_card(card: Mapping[str, Any]) -> list[str]:
    indicator = str(card.get("indicator", "info")).upper()
    ids = ", ".join(rule_ids(card)) or "(no rule)"
    lines = [f"{indicator:<10} {ids}"]
    lines += textwrap.wrap(
        str(card.get("summary", "")), WIDTH, initial_indent=_INDENT, subsequent_indent=_INDENT
    )
    lines += _why(str(card.get("detail", "")))
    return lines


def render_cards(cards: Iterable[Mapping[str, Any]], *, kap: bool, service_id: str) -> str:
    ordered = sorted(cards, key=lambda c: SEVERITY.get(str(c.get("indicator")), 3))
    if not ordered:
        if not kap:
            return f"No cards: not a ketamine or esketamine request ({service_id}), no rule ran.\n"
        return f"No cards: every check ran and none fired ({service_id}).\n"
    blocks = ["\n".join(render_card(card)) for card in ordered]
    counts = Counter(str(c.get("indicator")) for c in ordered)
    tally = ", ".join(f"{counts[k]} {k}" for k in SEVERITY if counts[k])
    noun = "card" if len(ordered) == 1 else "cards"
    return "\n\n".join(blocks) + f"\n\n{len(ordered)} {noun} ({tally}) from {service_id}\n"
