"""Card text helpers: paragraphs that reflow, whole days, when the dose is."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cds.cards.wording import reflow, when_phrase, whole_days
from cds.facts.fhir import display_date, display_time

NOW = datetime(2026, 11, 20, 15, tzinfo=UTC)
LA = ZoneInfo("America/Los_Angeles")


def test_reflow_joins_wrapped_lines_but_keeps_lists_tables_and_paragraphs() -> None:
    text = (
        "A sentence that\nwraps here.\n\n- item one\n  continues\n- item two\n\n"
        "| a | b |\n| c | d |"
    )
    assert reflow(text) == (
        "A sentence that wraps here.\n\n- item one continues\n- item two\n\n| a | b |\n| c | d |"
    )


def test_whole_days() -> None:
    assert whole_days("taken (1.08 days ago)") == "taken (yesterday)"
    assert whole_days("(0.4 days ago)") == "(today)"
    assert whole_days("is 31.9 days old, 1 days since") == "is 31 days old, 1 day since"


def test_dates_and_times_carry_the_facility_zone() -> None:
    assert display_time(NOW, LA) == "20 Nov 2026 07:00 PST"
    assert display_date(NOW, LA) == "20 Nov 2026"


def test_when_the_dose_is() -> None:
    utc = ZoneInfo("UTC")
    assert when_phrase(NOW.replace(hour=17), NOW, utc) == "today at 17:00"
    assert when_phrase(datetime(2026, 11, 21, 9, 30, tzinfo=UTC), NOW, utc) == "tomorrow at 09:30"
    assert when_phrase(datetime(2026, 11, 27, 15, tzinfo=UTC), NOW, utc) == (
        "in 7 days, on 27 Nov 2026 15:00 UTC"
    )
    assert when_phrase(datetime(2026, 11, 1, 15, tzinfo=UTC), NOW, utc) == "on 1 Nov 2026 15:00 UTC"
