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
        start, end = parse_instant(since, "--since"), parse_instant(until, "--until")
        stats = queries.rule_summary(engine, start, end, _offered_reasons(settings))
        shadow = queries.shadow_summary(engine, start, end)
        out.write(
            format_summary_json(stats, shadow)
            if fmt == "json"
            else format_summary_text(stats, shadow)
        )

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


def _offered_reasons(settings: Settings) -> dict[str, frozenset[str]] | None:
    """The override reasons each rule offers, from the configured rule set (None when it does
    not load: the summary then cannot flag reasons that were not offered, and says so)."""
    from cds.errors import RuleLoadError
    from cds.ruleset.loader import load_ruleset

    try:
        return load_ruleset(settings.rules_dir, settings.policy_file).offered_reasons()
    except RuleLoadError:
        return None


def format_summary_json(
    stats: list[queries.RuleStats], shadow: list[queries.ShadowStats] | None = None
) -> str:
    body = {
        "rules": [s.to_json() for s in stats],
        "shadow_rules": [s.to_json() for s in shadow or []],
    }
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()


def format_summary_text(
    stats: list[queries.RuleStats], shadow: list[queries.ShadowStats] | None = None
) -> str:
    """Markdown tables: readable in a terminal and paste into a review document.

    A card answered twice counts under each outcome (the "both" column counts those); an
    override reason the card did not offer is marked "(not offered)"."""
    lines = [
        "| rule | versions | fired | answered | accepted | overridden | both | override reasons "
        "| last fired |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in stats:
        reasons = "; ".join(_reason_text(r) for r in s.override_reasons)
        last = s.last_fired.isoformat(timespec="seconds") if s.last_fired else ""
        lines.append(
            f"| {s.rule_id} | {', '.join(s.versions)} | {s.fired} | {s.answered} | {s.accepted} "
            f"| {s.overridden} | {s.both} | {_md(reasons)} | {last} |"
        )
    if not stats:
        lines.append("| (no rule fired in this window) | | | | | | | | |")
    if shadow:
        lines += [
            "",
            "Shadow rules (evaluated, never shown to the EHR): how often they would have fired",
            "",
            "| rule | versions | would have fired | by service | by severity |",
            "|---|---|---:|---|---|",
        ]
        lines += [
            f"| {s.rule_id} | {', '.join(s.versions)} | {s.would_fire} "
            f"| {_pairs(s.by_service)} | {_pairs(s.by_indicator)} |"
            for s in shadow
        ]
    return "\n".join(lines) + "\n"


def _reason_text(reason: queries.ReasonCount) -> str:
    flag = " (not offered)" if reason.offered is False else ""
    return f"{reason.display or reason.code}{flag} ({reason.count})"


def _pairs(pairs: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{name} {n}" for name, n in pairs)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
