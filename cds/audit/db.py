"""Database side of the audit store: engines, migrations, and idempotent batch writes."""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Insert, Table, create_engine, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from cds.audit import records
from cds.audit.fileperms import private_dir, private_file
from cds.audit.schema import (
    CALLER_FIELDS,
    cards,
    evaluations,
    feedback,
    input_archive,
    quarantine,
    shadow_firings,
)

log = logging.getLogger(__name__)

CALLER_COLUMNS = tuple(f"caller_{name}" for name in CALLER_FIELDS)

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


def create_audit_engine(
    raw_url: str, state_dir: Path | None = None, *, pool_size: int = 2, max_overflow: int = 2
) -> Engine:
    """hide_parameters: a database error must never put patient ids into a log line.

    A SQLite file's directory is created only inside ``state_dir`` (the configured state
    directory); anywhere else it must exist already."""
    url = audit_url(raw_url)
    if url.get_backend_name() == "sqlite":
        _ensure_sqlite_file(url, state_dir)
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    # connect_timeout: a dead server must fail a batch in seconds, not hang the writer for
    # the kernel's TCP timeout. pool_pre_ping: survive a server restart between batches.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # A request thread waiting for a connection must give up in time to answer.
        pool_timeout=5,
        connect_args={"connect_timeout": 5},
        hide_parameters=True,
    )


def _ensure_sqlite_file(url: URL, state_dir: Path | None) -> None:
    """The directory (only inside the state directory) and the file, owner-only (SQLite gives
    its -wal and -shm files the mode of the database file)."""
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        return
    path = Path(url.database).expanduser()
    directory = path.parent
    if not directory.is_dir():
        if state_dir is None or not directory.resolve().is_relative_to(state_dir.resolve()):
            raise ValueError(f"audit database directory {directory} does not exist")
        private_dir(directory)
    private_file(path)


# Causes of a failed connection worth telling an operator. Only these fixed phrases are ever
# shown: the driver's message may quote SQL parameters (patient ids) for other errors.
_CAUSES = (
    ("connection refused", "connection refused"),
    ("timeout expired", "connection timed out"),
    ("timed out", "connection timed out"),
    ("could not translate host name", "unknown host name"),
    ("name or service not known", "unknown host name"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("password authentication failed", "password authentication failed"),
    ("no password supplied", "no password supplied"),
    ("no pg_hba.conf entry", "connection not allowed by pg_hba.conf"),
    ("does not exist", "database or role does not exist"),
    ("ssl", "TLS negotiation failed"),
    ("too many connections", "too many connections"),
    ("the database system is starting up", "server starting up"),
    ("the database system is shutting down", "server shutting down"),
    ("unable to open database file", "cannot open the database file"),
    ("database is locked", "database is locked"),
    ("server closed the connection", "server closed the connection"),
)


def describe_failure(raw_url: str | URL, exc: BaseException) -> str:
    """``postgresql host db.internal port 5432: connection refused (OperationalError)``: where
    and why, never the password, the SQL or its parameters."""
    try:
        url = audit_url(raw_url) if isinstance(raw_url, str) else raw_url
    except (ValueError, ArgumentError):  # describing an error must not raise another
        return type(exc).__name__
    if url.get_backend_name() == "sqlite":
        where = f"sqlite file {url.database}"
    else:
        where = f"postgresql host {url.host or 'localhost'} port {url.port or 5432}"
    if isinstance(exc, SchemaNotMigrated):
        return f"{where}: {exc}"
    message = str(getattr(exc, "orig", None) or exc).lower()
    cause = next((text for phrase, text in _CAUSES if phrase in message), "unreachable")
    return f"{where}: {cause} ({type(exc).__name__})"


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


class SchemaNotMigrated(Exception):
    """The database answers but is not at this version's schema, and this process must not
    migrate it (KAP_CDS_MIGRATE_ON_START=false): ``kap-cds db upgrade`` has not run yet."""


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


def require_head(engine: Engine) -> None:
    """``SchemaNotMigrated`` unless the schema is at head (a pod that does not migrate)."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotMigrated(
            f"audit database schema is at {current}, this version needs {head}: "
            "run `kap-cds db upgrade`"
        )


def current_revision(engine: Engine) -> str:
    """The schema revision the database is at (``none`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() or "none"


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
    eval_rows, card_rows, fb_records, quarantined = _split(batch)
    if quarantined:
        conn.execute(insert_ignore(conn, quarantine), quarantined)
    if eval_rows:
        conn.execute(insert_ignore(conn, evaluations), eval_rows)
        _write_shadow_and_archive(conn, [r for r in batch if r["kind"] == records.EVALUATION])
    if card_rows:
        conn.execute(insert_ignore(conn, cards), card_rows)
        _link_earlier_feedback(conn, {row["card_uuid"] for row in card_rows})
    if fb_records:
        conn.execute(insert_ignore(conn, feedback), _feedback_rows(conn, fb_records))


Rows = list[dict[str, Any]]


def _split(batch: Sequence[dict[str, Any]]) -> tuple[Rows, Rows, Rows, Rows]:
    eval_rows: Rows = []
    card_rows: Rows = []
    fb_records: Rows = []
    quarantined: Rows = []
    for rec in batch:
        if rec["kind"] == records.EVALUATION:
            eval_rows.append(evaluation_row(rec))
            card_rows.extend(card_rows_of(rec))
        elif rec["kind"] == records.FEEDBACK:
            fb_records.append(rec)
        elif rec["kind"] == records.QUARANTINE:
            quarantined.append(quarantine_row(rec))
        else:
            raise ValueError(f"unknown audit record kind {rec['kind']!r}")
    return eval_rows, card_rows, fb_records, quarantined


def quarantine_record(line: bytes, reason: str) -> dict[str, Any]:
    """A spool line the database refused (or that cannot be read), as a row it will take: the
    bytes as text with NUL and invalid UTF-8 backslash-escaped; the id is the line's digest."""
    raw = line.rstrip(b"\n").decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    return {
        "kind": records.QUARANTINE,
        "id": hashlib.sha256(line).hexdigest(),
        "quarantined_at": datetime.now(UTC).isoformat(),
        "reason": reason,
        "raw": raw,
    }


def quarantine_row(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: v for k, v in rec.items() if k != "kind"},
        "quarantined_at": parse_time(rec["quarantined_at"]),
    }


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
        # Absent from records spooled before revision 0003: kept as unknown (null).
        **{name: rec.get(name) for name in CALLER_COLUMNS},
        "user_id": rec.get("user_id"),
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
