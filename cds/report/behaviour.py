"""Rule behaviour over a period, from the audit store: fired, accepted, overridden, reasons.

Read-only: the report never migrates or creates an audit database (a report run next to a live
server must not touch its store), and a store that cannot be read becomes a sentence in the
report, not a failed report. Error texts carry the exception class only: a database message may
contain the URL and its password.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cds.audit.db import audit_url, create_audit_engine
from cds.audit.queries import (
    BurdenStats,
    RuleStats,
    ShadowStats,
    alert_burden,
    fired_by_day,
    rule_summary,
    shadow_summary,
)

# Overridden in at least this share of firings: the card is probably ignored (alert fatigue).
FATIGUE_SHARE = 0.8


def is_fatigued(stats: RuleStats) -> bool:
    return stats.fired > 0 and stats.overridden >= FATIGUE_SHARE * stats.fired


@dataclass(frozen=True)
class Behaviour:
    since: datetime | None
    stats: dict[str, RuleStats] = field(default_factory=dict)
    shadow: dict[str, ShadowStats] = field(default_factory=dict)
    burden: tuple[BurdenStats, ...] = ()
    by_day: dict[str, dict[str, int]] = field(default_factory=dict)  # rule -> UTC day -> cards
    error: str | None = None
    computed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def available(self) -> bool:
        return self.error is None

    def of(self, rule_id: str) -> RuleStats | None:
        return self.stats.get(rule_id)

    def never_fired(self, rule_ids: Iterable[str]) -> list[str]:
        return [r for r in rule_ids if r not in self.stats or self.stats[r].fired == 0]

    def fatigued(self) -> list[RuleStats]:
        return [s for s in self.stats.values() if is_fatigued(s)]

    def unknown_rules(self, rule_ids: Iterable[str]) -> list[str]:
        """Rules in the trail that the loaded rule set no longer has (retired or renamed)."""
        known = set(rule_ids)
        return sorted(r for r in self.stats if r not in known)


def read_behaviour(
    engine: Engine,
    since: datetime | None,
    offered: Mapping[str, frozenset[str]] | None = None,
) -> Behaviour:
    """Every figure the report and the governance page show, in one read of the store."""
    try:
        stats = rule_summary(engine, since, None, offered)
        shadow = shadow_summary(engine, since, None)
        burden = alert_burden(engine, since, None)
        by_day = fired_by_day(engine, since, None)
    except SQLAlchemyError as exc:
        return Behaviour(since, error=f"the audit store could not be read ({type(exc).__name__})")
    return Behaviour(
        since,
        {s.rule_id: s for s in stats},
        {s.rule_id: s for s in shadow},
        tuple(burden),
        by_day,
    )


def behaviour_from_url(
    database_url: str,
    since: datetime | None,
    offered: Mapping[str, frozenset[str]] | None = None,
) -> Behaviour:
    """Open the configured store read-only for one query; never raises."""
    try:
        url = audit_url(database_url)
    except Exception as exc:  # any malformed URL is a report finding, not a crash
        return Behaviour(since, error=f"the audit store URL is not usable ({type(exc).__name__})")
    if url.get_backend_name() == "sqlite" and not _sqlite_exists(url.database):
        return Behaviour(since, error="no audit database yet (the SQLite file does not exist)")
    try:
        engine = create_audit_engine(database_url)
    except Exception as exc:  # e.g. a missing driver
        return Behaviour(since, error=f"the audit store could not be opened ({type(exc).__name__})")
    try:
        return read_behaviour(engine, since, offered)
    finally:
        engine.dispose()


def _sqlite_exists(database: str | None) -> bool:
    if not database or database == ":memory:" or database.startswith("file:"):
        return database not in (None, "", ":memory:")
    return Path(database).expanduser().is_file()
