"""The audit tables (SQLAlchemy Core).

The migrations in ``migrations/versions`` create these tables; a test checks that the two agree.
Strings have no length limit on purpose: a value longer than a guessed limit would make a batch
fail on every retry, and the audit trail must keep what the service decided, whole.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every backend.

    SQLite has no timestamp type and drops offsets; without this, times read back from SQLite
    would be naive and compare wrongly with the aware times the service uses.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("audit times must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_type() -> Any:
    """JSON everywhere, JSONB on PostgreSQL (indexable, compact)."""
    return JSON().with_variant(JSONB(), "postgresql")


CALLER_FIELDS = ("iss", "sub", "jti", "kid", "tenant")


def caller_columns() -> list[Column[Any]]:
    """The verified CDS client of a call (null when the service runs open)."""
    return [Column(f"caller_{name}", String, nullable=True) for name in CALLER_FIELDS]


evaluations = Table(
    "audit_evaluation",
    metadata,
    Column("id", String, primary_key=True),  # uuid4 made at record time: replays are idempotent
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("service_id", String, nullable=False),
    Column("hook", String, nullable=False),
    Column("hook_instance", String, nullable=False),
    Column("patient_id", String, nullable=True),
    Column("ruleset_digest", String, nullable=False),
    Column("t0", UTCDateTime, nullable=True),
    Column("kap", Boolean, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("data_outcomes", json_type(), nullable=False),  # prefetch key -> KeyOutcome value
    Column("card_count", Integer, nullable=False),
    # Who asked (revision 0003): the verified JWT caller and the EHR's context.userId.
    *caller_columns(),
    Column("user_id", String, nullable=True),
    Index("ix_audit_evaluation_recorded_at", "recorded_at"),
    Index("ix_audit_evaluation_caller_iss", "caller_iss"),
)

cards = Table(
    "audit_card",
    metadata,
    Column(
        "evaluation_id",
        String,
        ForeignKey("audit_evaluation.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("card_uuid", String, primary_key=True),
    Column("position", Integer, nullable=False),  # order of the card in the response
    # One row per rule the card stands for: a readiness checklist card lists several (0002).
    Column("rule_id", String, primary_key=True),
    Column("rule_version", String, nullable=False),
    Column("variant", String, nullable=True),  # NULL for rows written before 0002
    Column("line", Integer, nullable=False, server_default=text("0")),  # rule's line on the card
    Column("family", String, nullable=False),
    Column("indicator", String, nullable=False),
    Column("summary", Text, nullable=True),
    Column("facts", json_type(), nullable=False),  # values and source resource ids
    Index("ix_audit_card_card_uuid", "card_uuid"),
    Index("ix_audit_card_rule_id", "rule_id"),
)

feedback = Table(
    "audit_feedback",
    metadata,
    Column("id", String, primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("service_id", String, nullable=False),
    Column("card_uuid", String, nullable=False),
    Column(
        "evaluation_id",
        String,
        ForeignKey("audit_evaluation.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("outcome", String, nullable=False),
    Column("accepted_suggestions", json_type(), nullable=False),  # list of suggestion uuids
    Column("override_system", String, nullable=True),
    Column("override_code", String, nullable=True),
    Column("override_display", Text, nullable=True),
    Column("user_comment", Text, nullable=True),
    Column("outcome_timestamp", UTCDateTime, nullable=True),
    Column("unknown_card", Boolean, nullable=False),
    *caller_columns(),
    Index("ix_audit_feedback_card_uuid", "card_uuid"),
    Index("ix_audit_feedback_caller_iss", "caller_iss"),
    Index("ix_audit_feedback_received_at", "received_at"),
)

# Records the database refused (or spool lines that could not be read), kept whole and escaped,
# so that export, summary and an operator see them without access to the node's spool directory.
quarantine = Table(
    "audit_quarantine",
    metadata,
    Column("id", String, primary_key=True),  # sha256 of the raw line: re-quarantining is a no-op
    Column("quarantined_at", UTCDateTime, nullable=False),
    Column("reason", String, nullable=False),
    Column("raw", Text, nullable=False),  # the line, NUL and invalid UTF-8 backslash-escaped
    Index("ix_audit_quarantine_quarantined_at", "quarantined_at"),
)

# --- shared security state (revision 0003): one view for every replica and worker -----------

# First use of each token id, until the token expires: a replay is refused on any process.
jti_uses = Table(
    "security_jti",
    metadata,
    Column("iss", String, primary_key=True),
    Column("jti", String, primary_key=True),
    Column("expires_at", Float, nullable=False),  # epoch seconds: purge once past
    Index("ix_security_jti_expires_at", "expires_at"),
)

# Requests per issuer per fixed window (rate limit), incremented by an atomic upsert.
rate_windows = Table(
    "security_rate_window",
    metadata,
    Column("iss", String, primary_key=True),
    Column("window_start", BigInteger, primary_key=True),  # epoch seconds
    Column("hits", Integer, nullable=False),
)

# Shadow rules that would have fired (never shown to the EHR): one row per rule and evaluation.
shadow_firings = Table(
    "audit_shadow_firing",
    metadata,
    Column(
        "evaluation_id",
        String,
        ForeignKey("audit_evaluation.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("rule_id", String, primary_key=True),
    Column("rule_version", String, nullable=False),
    Column("family", String, nullable=False),
    Column("indicator", String, nullable=False),
    Column("facts", json_type(), nullable=False),
    Index("ix_audit_shadow_firing_rule_id", "rule_id"),
)

# Opt-in input archive for impact replay: each evaluation's inputs (context and patient data),
# encrypted before they leave the request thread. The key never enters the database; `key_id`
# only says which of the configured keys can open a row. Read by the CLI alone (never over HTTP).
input_archive = Table(
    "audit_input_archive",
    metadata,
    Column(
        "evaluation_id",
        String,
        ForeignKey("audit_evaluation.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("service_id", String, nullable=False),
    Column("key_id", String, nullable=False),
    Column("token", Text, nullable=False),
    Index("ix_audit_input_archive_recorded_at", "recorded_at"),
)
