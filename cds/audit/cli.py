"""``kap-cds audit export`` and ``kap-cds audit summary`` (wired into ``cds.cli`` by the lead).

These open the database directly, not the spool: a report run next to a live server must never
take over that server's records. They do migrate an empty database to head, so a report on a new
install prints an empty result rather than an error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cds.audit import db, queries
from cds.config import Settings

EXIT_OK = 0
EXIT_STORE = 1  # the database could not be read
EXIT_USAGE = 2  # bad arguments (same code argparse uses)


class UsageError(ValueError):
    pass


def parse_instant(value: str | None, name: str) -> datetime | None:
    """ISO 8601; a time without an offset is taken as UTC (the store keeps UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{name}: not an ISO 8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def export_command(
    settings: Settings, since: str | None, fmt: str, out: TextIO, *, issuer: str | None = None
) -> int:
    """Write the audit trail (``--since``, ``--format jsonl|csv``, ``--issuer``) to ``out``."""

    def run(engine: Engine) -> None:
        if fmt not in ("jsonl", "csv"):
            raise UsageError(f"--format must be jsonl or csv, not {fmt!r}")
        start = parse_instant(since, "--since")
        queries.export(engine, start, "csv" if fmt == "csv" else "jsonl", out, issuer=issuer)

    return _with_store(settings, run)


def summary_command(
    settings: Settings,
    since: str | None,
    until: str | None,
    fmt: str,
    out: TextIO,
    *,
    issuer: str | None = None,
) -> int:
    """Per-rule counts for the compliance report (``--format text|json``) to ``out``."""

    def run(engine: Engine) -> None:
        if fmt not in ("text", "json"):
            raise UsageError(f"--format must be text or json, not {fmt!r}")
        start, end = parse_instant(since, "--since"), parse_instant(until, "--until")
        stats = queries.rule_summary(engine, start, end, issuer=issuer)
        # Quarantined records have no trustworthy issuer (they could not be read): always shown.
        held = queries.quarantine_count(engine, start, end)
        text = (
            format_summary_json(stats, held) if fmt == "json" else format_summary_text(stats, held)
        )
        out.write(text)

    return _with_store(settings, run)


def _with_store(settings: Settings, run: Callable[[Engine], None]) -> int:
    engine = db.create_audit_engine(settings.database_url)
    try:
        db.upgrade(engine)
        run(engine)
    except UsageError as exc:
        sys.stderr.write(f"kap-cds audit: {exc}\n")
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        # The class only: the message may carry the URL or query parameters.
        sys.stderr.write(f"kap-cds audit: audit store unavailable ({type(exc).__name__})\n")
        return EXIT_STORE
    finally:
        engine.dispose()
    return EXIT_OK


def format_summary_json(stats: list[queries.RuleStats], quarantined: int = 0) -> str:
    body = {"rules": [s.to_json() for s in stats], "quarantined_records": quarantined}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()


def format_summary_text(stats: list[queries.RuleStats], quarantined: int = 0) -> str:
    """A Markdown table: readable in a terminal and pastes into a review document."""
    lines = [
        "| rule | versions | fired | accepted | overridden | override reasons | last fired |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for s in stats:
        reasons = "; ".join(f"{r.display or r.code} ({r.count})" for r in s.override_reasons)
        last = s.last_fired.isoformat(timespec="seconds") if s.last_fired else ""
        lines.append(
            f"| {s.rule_id} | {', '.join(s.versions)} | {s.fired} | {s.accepted} "
            f"| {s.overridden} | {_md(reasons)} | {last} |"
        )
    if not stats:
        lines.append("| (no rule fired in this window) | | | | | | |")
    if quarantined:
        lines.append("")
        lines.append(
            f"**{quarantined} audit record(s) quarantined** in this window: the database refused "
            'them; they are not counted above (see `kap-cds audit export`, record "quarantined").'
        )
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
