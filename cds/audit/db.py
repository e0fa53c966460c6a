"""Database side of the audit store: engines, migrations, and idempotent batch writes."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Insert, Table, create_engine, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url

from cds.audit import records
from cds.audit.schema import cards, evaluations, feedback, input_archive, shadow_firings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant will do; it only has to be the same in every kap-cds process.
PG_MIGRATION_LOCK = 0x6B6170636473  # "kapcds"


def audit_url(raw: str) -> URL:
    """Parse the configured URL; ``postgresql://`` means the psycopg 3 driver."""
    url = make_url(raw)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported audit database {backend!r}: use sqlite or postgresql")
    return url


def create_audit_engine(raw_url: str) -> Engine:
    """hide_parameters: a database error must never put patient ids into a log line."""
    url = audit_url(raw_url)
    if url.get_backend_name() == "sqlite":
        _ensure_sqlite_dir(url)
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    # connect_timeout: a dead server must fail a batch in seconds, not hang the writer for
    # the kernel's TCP timeout. pool_pre_ping: survive a server restart between batches.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=2,
        connect_args={"connect_timeout": 5},
        hide_parameters=True,
    )


def _ensure_sqlite_dir(url: URL) -> None:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL: exports and summaries read while the writer writes, without "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# --- migrations -----------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    # ConfigParser interpolation: a literal % in the install path must be doubled.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to head; safe when several processes start at once."""
    with _sqlite_migration_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held to the end of the transaction: the second process waits, then finds head.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
        command.upgrade(alembic_config(conn), "head")


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


# --- batch writes ---------------------------------------------------------------------------


def insert_ignore(conn: Connection, table: Table) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING: a replayed record is a no-op, never an error."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def write_batch(conn: Connection, batch: Sequence[dict[str, Any]]) -> None:
    """Write spool records in one transaction (the caller's). Order matters: cards before the
    feedback that may point at them."""
    eval_rows, card_rows, fb_records = _split(batch)
    if eval_rows:
        conn.execute(insert_ignore(conn, evaluations), eval_rows)
        _write_shadow_and_archive(conn, [r for r in batch if r["kind"] == records.EVALUATION])
    if card_rows:
        conn.execute(insert_ignore(conn, cards), card_rows)
        _link_earlier_feedback(conn, {row["card_uuid"] for row in card_rows})
    if fb_records:
        conn.execute(insert_ignore(conn, feedback), _feedback_rows(conn, fb_records))


def _split(
    batch: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    eval_rows: list[dict[str, Any]] = []
    card_rows: list[dict[str, Any]] = []
    fb_records: list[dict[str, Any]] = []
    for rec in batch:
        if rec["kind"] == records.EVALUATION:
            eval_rows.append(evaluation_row(rec))
            card_rows.extend(card_rows_of(rec))
        elif rec["kind"] == records.FEEDBACK:
            fb_records.append(rec)
        else:
            raise ValueError(f"unknown audit record kind {rec['kind']!r}")
    return eval_rows, card_rows, fb_records


def evaluation_row(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": rec["id"],
        "recorded_at": parse_time(rec["recorded_at"]),
        "service_id": rec["service_id"],
        "hook": rec["hook"],
        "hook_instance": rec["hook_instance"],
        "patient_id": rec["patient_id"],
        "ruleset_digest": rec["ruleset_digest"],
        "t0": parse_time(rec["t0"]),
        "kap": bool(rec["kap"]),
        "latency_ms": float(rec["latency_ms"]),
        "data_outcomes": rec["data_outcomes"],
        "card_count": len({card["card_uuid"] for card in rec["cards"]}),
    }


def _write_shadow_and_archive(conn: Connection, evaluation_records: list[dict[str, Any]]) -> None:
    shadow = [row for rec in evaluation_records for row in shadow_rows_of(rec)]
    if shadow:
        conn.execute(insert_ignore(conn, shadow_firings), shadow)
    archived = [archive_row(rec) for rec in evaluation_records if rec.get("archive")]
    if archived:
        conn.execute(insert_ignore(conn, input_archive), archived)


def shadow_rows_of(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Would-have-fired rows of shadow rules (records written before shadow rules had none)."""
    return [
        {
            "evaluation_id": rec["id"],
            "rule_id": entry["rule_id"],
            "rule_version": entry["rule_version"],
            "family": entry["family"],
            "indicator": entry["indicator"],
            "facts": entry["facts"],
        }
        for entry in rec.get("shadow", [])
    ]


def archive_row(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "evaluation_id": rec["id"],
        "recorded_at": parse_time(rec["recorded_at"]),
        "service_id": rec["service_id"],
        "key_id": rec["archive"]["key_id"],
        "token": rec["archive"]["token"],
    }


def card_rows_of(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (card, rule); ``position`` is the card's place in the response. Spool lines
    written before revision 0002 have no ``variant``."""
    rows: list[dict[str, Any]] = []
    positions: dict[str, int] = {}
    lines: dict[str, int] = {}
    for card in rec["cards"]:
        uuid = card["card_uuid"]
        position = positions.setdefault(uuid, len(positions))
        lines[uuid] = lines.get(uuid, -1) + 1
        rows.append(
            {
                "evaluation_id": rec["id"],
                "position": position,
                "line": lines[uuid],
                "variant": None,
                **card,
            }
        )
    return rows


def _feedback_rows(conn: Connection, fb_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    uuids = {rec["card_uuid"] for rec in fb_records}
    known = dict(
        conn.execute(
            select(cards.c.card_uuid, cards.c.evaluation_id).where(cards.c.card_uuid.in_(uuids))
        ).all()
    )
    return [feedback_row(rec, known.get(rec["card_uuid"])) for rec in fb_records]


def feedback_row(rec: dict[str, Any], evaluation_id: str | None) -> dict[str, Any]:
    fields = {k: v for k, v in rec.items() if k != "kind"}
    return {
        **fields,
        "received_at": parse_time(rec["received_at"]),
        "outcome_timestamp": parse_time_lenient(rec["outcome_timestamp"]),
        "evaluation_id": evaluation_id,
        "unknown_card": evaluation_id is None,
    }


def _link_earlier_feedback(conn: Connection, card_uuids: set[str]) -> None:
    """Feedback can reach the store before its card (another process still has the evaluation in
    its spool); link it now that the card is here."""
    owner = (
        select(cards.c.evaluation_id)
        .where(cards.c.card_uuid == feedback.c.card_uuid)
        .limit(1)
        .scalar_subquery()
    )
    conn.execute(
        update(feedback)
        .where(feedback.c.unknown_card.is_(True), feedback.c.card_uuid.in_(card_uuids))
        .values(evaluation_id=owner, unknown_card=False)
    )


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def parse_time_lenient(value: Any) -> datetime | None:
    """The EHR's outcomeTimestamp: kept when it is a zoned ISO time, else dropped (the item is
    still stored; received_at says when it came)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
