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


def export_command(settings: Settings, since: str | None, fmt: str, out: TextIO) -> int:
    """Write the audit trail (``--since``, ``--format jsonl|csv``) to ``out``."""

    def run(engine: Engine) -> None:
        if fmt not in ("jsonl", "csv"):
            raise UsageError(f"--format must be jsonl or csv, not {fmt!r}")
        start = parse_instant(since, "--since")
        queries.export(engine, start, "csv" if fmt == "csv" else "jsonl", out)

    return _with_store(settings, run)


def summary_command(
    settings: Settings,
    since: str | None,
    until: str | None,
    fmt: str,
    out: TextIO,
) -> int:
    """Per-rule counts for the compliance report (``--format text|json``) to ``out``."""

    def run(engine: Engine) -> None:
        if fmt not in ("text", "json"):
            raise UsageError(f"--format must be text or json, not {fmt!r}")
        stats = queries.rule_summary(
            engine, parse_instant(since, "--since"), parse_instant(until, "--until")
        )
        out.write(format_summary_json(stats) if fmt == "json" else format_summary_text(stats))

    return _with_store(settings, run)


def upgrade_command(settings: Settings, out: TextIO) -> int:
    """``kap-cds db upgrade``: migrate the audit database to head, as its own deployment step
    (a Kubernetes Job or init container) when pods start with KAP_CDS_MIGRATE_ON_START=false."""

    def run(engine: Engine) -> None:
        out.write(f"audit database at schema {db.current_revision(engine)}\n")

    return _with_store(settings, run)


def _with_store(settings: Settings, run: Callable[[Engine], None]) -> int:
    try:
        engine = db.create_audit_engine(settings.database_url, settings.state_dir)
    except ValueError as exc:
        sys.stderr.write(f"kap-cds audit: KAP_CDS_DATABASE_URL: {exc}\n")
        return EXIT_USAGE
    try:
        db.upgrade(engine)
        run(engine)
    except UsageError as exc:
        sys.stderr.write(f"kap-cds audit: {exc}\n")
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        # Host, port and a fixed cause phrase only: the message may carry query parameters.
        where = db.describe_failure(settings.database_url, exc)
        sys.stderr.write(f"kap-cds audit: audit store unavailable: {where}\n")
        return EXIT_STORE
    finally:
        engine.dispose()
    return EXIT_OK


def format_summary_json(stats: list[queries.RuleStats]) -> str:
    body = {"rules": [s.to_json() for s in stats]}
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()


def format_summary_text(stats: list[queries.RuleStats]) -> str:
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
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
