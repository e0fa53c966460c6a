"""Alembic migrations of the audit store, applied by ``cds.audit.db.upgrade`` (no alembic.ini)."""
