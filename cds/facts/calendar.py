"""Calendar arithmetic in the facility's zone: intervals the way clinicians schedule them.

A clinic books "Monday, Wednesday, Friday" or "every two weeks", not "every 48.0 hours": a
session an hour or two earlier than last time is still two days, or fourteen days, later. So
day and week intervals between sessions are counted in local calendar dates (catalog 3.2: dates
compared in the facility's local time zone), and are whole numbers a card can show as-is.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def calendar_days(earlier: datetime, later: datetime, tz: ZoneInfo) -> int:
    """Local calendar days from ``earlier`` to ``later`` (same local date = 0)."""
    return (local_day(later, tz) - local_day(earlier, tz)).days


def same_day(a: datetime, b: datetime, tz: ZoneInfo) -> bool:
    return local_day(a, tz) == local_day(b, tz)
