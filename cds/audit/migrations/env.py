"""Alembic environment: runs on the connection ``cds.audit.db.upgrade`` passes in.

There is no alembic.ini and no URL here on purpose: the caller owns the connection and the
transaction (and, on PostgreSQL, the advisory lock that keeps two starting processes from
migrating at once).
"""

from __future__ import annotations

from alembic import context

from cds.audit.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("audit migrations run through cds.audit.db.upgrade(engine)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables for later revisions.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
