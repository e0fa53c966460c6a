"""Who asked (caller columns), quarantined records, and the shared security state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

- ``caller_iss/sub/jti/kid/tenant`` on evaluations and feedback, ``user_id`` on evaluations: the
  verified JWT caller and the EHR's ``context.userId`` (null for calls made in open mode).
- ``audit_quarantine``: records the database refused, escaped, visible to export and summary.
- ``security_jti`` (replay guard) and ``security_rate_window`` (per-issuer rate limit): state every
  replica and worker must share.

Written out in full, like 0001, so later model changes never rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cds.audit.schema import UTCDateTime

revision = "0003"
# The revisions were written side by side; applied in the order 0001, 0004, 0002, 0003 (one head).
down_revision = "0002"
branch_labels = None
depends_on = None

CALLER_FIELDS = ("iss", "sub", "jti", "kid", "tenant")


def _add_caller_columns(table: str) -> None:
    with op.batch_alter_table(table) as batch:
        for name in CALLER_FIELDS:
            batch.add_column(sa.Column(f"caller_{name}", sa.String(), nullable=True))
        if table == "audit_evaluation":
            batch.add_column(sa.Column("user_id", sa.String(), nullable=True))
    op.create_index(f"ix_{table}_caller_iss", table, ["caller_iss"])


def upgrade() -> None:
    _add_caller_columns("audit_evaluation")
    _add_caller_columns("audit_feedback")
    op.create_table(
        "audit_quarantine",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("quarantined_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_quarantine"),
    )
    op.create_index("ix_audit_quarantine_quarantined_at", "audit_quarantine", ["quarantined_at"])
    op.create_table(
        "security_jti",
        sa.Column("iss", sa.String(), nullable=False),
        sa.Column("jti", sa.String(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("iss", "jti", name="pk_security_jti"),
    )
    op.create_index("ix_security_jti_expires_at", "security_jti", ["expires_at"])
    op.create_table(
        "security_rate_window",
        sa.Column("iss", sa.String(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("iss", "window_start", name="pk_security_rate_window"),
    )


def downgrade() -> None:
    op.drop_table("security_rate_window")
    op.drop_table("security_jti")
    op.drop_table("audit_quarantine")
    for table in ("audit_feedback", "audit_evaluation"):
        op.drop_index(f"ix_{table}_caller_iss", table_name=table)
        with op.batch_alter_table(table) as batch:
            if table == "audit_evaluation":
                batch.drop_column("user_id")
            for name in CALLER_FIELDS:
                batch.drop_column(f"caller_{name}")
