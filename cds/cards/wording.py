"""Card text as a clinician reads it: paragraphs that reflow, whole days, times relative to now.

Rule files hard-wrap their Markdown at ~100 columns so reviewers can read them; an EHR shows
``detail`` in a panel of its own width, where a newline in mid-sentence breaks the text. Here
lines are joined back into paragraphs (list items, table rows and headings stay lines).
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from cds.facts.fhir import display_time

_BLOCK_START = re.compile(r"^\s*([-*+]\s|\d+[.)]\s|\||#)")
_FRACTIONAL_DAYS = re.compile(r"\b(\d+)\.\d+ (days?)\b")
_ONE_DAY_AGO = re.compile(r"\b1 days? ago\b")
_ZERO_DAYS_AGO = re.compile(r"\b0 days? ago\b")
_ONE_DAYS = re.compile(r"\b1 days\b")


def reflow(markdown: str) -> str:
    """Join hard-wrapped lines into paragraphs; keep blank lines, list items, tables, headings."""
    blocks: list[str] = []
    for paragraph in re.split(r"\n\s*\n", markdown.strip()):
        lines: list[str] = []
        for raw in paragraph.splitlines():
            line = raw.strip()
            if not line:
                continue
            if lines and not _BLOCK_START.match(raw) and not lines[-1].startswith("|"):
                lines[-1] = f"{lines[-1]} {line}"
            else:
                lines.append(line)
        blocks.append("\n".join(lines))
    return "\n\n".join(b for b in blocks if b)


def whole_days(text: str) -> str:
    """Day counts as people say them: "1.08 days ago" -> "yesterday", "3.6 days" -> "3 days"."""
    text = _FRACTIONAL_DAYS.sub(lambda m: f"{m.group(1)} {m.group(2)}", text)
    text = _ZERO_DAYS_AGO.sub("today", text)
    text = _ONE_DAY_AGO.sub("yesterday", text)
    return _ONE_DAYS.sub("1 day", text)


def when_phrase(moment: datetime, now: datetime, tz: ZoneInfo) -> str:
    """When the dose is, from now: "today at 15:00", "tomorrow at 09:30", "in 7 days, on 27 Nov
    2026 15:00 UTC", or "on <date and time>" when it is not ahead."""
    local, today = moment.astimezone(tz), now.astimezone(tz)
    days = (local.date() - today.date()).days
    clock = f"{local:%H:%M}"
    if days == 0:
        return f"today at {clock}"
    if days == 1:
        return f"tomorrow at {clock}"
    if days > 1:
        return f"in {days} days, on {display_time(moment, tz)}"
    return f"on {display_time(moment, tz)}"
