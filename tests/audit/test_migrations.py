"""Migrations: applied at open, idempotent, and in step with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cds.audit import AuditStore, db
from cds.audit.schema import metadata


def test_open_store_upgrades_to_head_and_models_match(store: AuditStore) -> None:
    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == head
        assert compare_metadata(context, metadata) == []


def test_upgrade_twice_is_a_no_op(store: AuditStore) -> None:
    db.upgrade(store.engine)
    db.upgrade(store.engine)
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0002"


def test_postgresql_urls_use_psycopg_3() -> None:
    assert db.audit_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert db.audit_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert db.audit_url("sqlite:///x.db").drivername == "sqlite"
