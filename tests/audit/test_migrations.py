"""Migrations: applied at open, idempotent, and in step with the models."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import column, func, insert, select, table

from cds.audit import AuditStore, db
from cds.audit.schema import cards, evaluations, metadata


def test_open_store_upgrades_to_head_and_models_match(store: AuditStore) -> None:
    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == head
        assert compare_metadata(context, metadata) == []


def test_upgrade_twice_is_a_no_op(store: AuditStore) -> None:
    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    db.upgrade(store.engine)
    db.upgrade(store.engine)
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head


def test_postgresql_urls_use_psycopg_3() -> None:
    assert db.audit_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert db.audit_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert db.audit_url("sqlite:///x.db").drivername == "sqlite"


def test_0002_keeps_the_rows_of_0001_and_allows_several_rules_per_card(db_url: str) -> None:
    engine = db.create_audit_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(db.alembic_config(conn), "0001")
            conn.execute(insert(evaluations), EVALUATION)
            # The 0001 shape of audit_card, written with its own columns only.
            old = table("audit_card", *(column(name) for name in OLD_CARD))
            conn.execute(insert(old), OLD_CARD)
        db.upgrade(engine)
        with engine.begin() as conn:
            row = conn.execute(select(cards)).mappings().one()
            assert (row["rule_id"], row["variant"], row["line"]) == ("KAP-CI-010", None, 0)
            second = {**OLD_CARD, "rule_id": "KAP-CI-012", "variant": "order-missing", "line": 1}
            conn.execute(insert(cards), second)  # a second rule on the same card: now allowed
            assert conn.execute(select(func.count()).select_from(cards)).scalar() == 2
    finally:
        engine.dispose()


EVALUATION = {
    "id": "ev-1",
    "recorded_at": datetime(2026, 11, 20, tzinfo=UTC),
    "service_id": "kap-order-sign",
    "hook": "order-sign",
    "hook_instance": "h",
    "patient_id": "p",
    "ruleset_digest": "d",
    "t0": None,
    "kap": True,
    "latency_ms": 1.0,
    "data_outcomes": {},
    "card_count": 1,
}
OLD_CARD = {
    "evaluation_id": "ev-1",
    "card_uuid": "c-1",
    "position": 0,
    "rule_id": "KAP-CI-010",
    "rule_version": "1.0.0",
    "family": "contraindication",
    "indicator": "warning",
    "summary": "s",
    "facts": "[]",
}
