"""Shadow-rule firings and the opt-in encrypted input archive.

Revision ID: 0004
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from cds.audit.schema import UTCDateTime

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_shadow_firing",
        sa.Column("evaluation_id", sa.String(), nullable=False),
        sa.Column("rule_id", sa.String(), nullable=False),
        sa.Column("rule_version", sa.String(), nullable=False),
        sa.Column("family", sa.String(), nullable=False),
        sa.Column("indicator", sa.String(), nullable=False),
        sa.Column("facts", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["audit_evaluation.id"],
            name="fk_audit_shadow_firing_evaluation_id_audit_evaluation",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("evaluation_id", "rule_id", name="pk_audit_shadow_firing"),
    )
    op.create_index("ix_audit_shadow_firing_rule_id", "audit_shadow_firing", ["rule_id"])
    op.create_table(
        "audit_input_archive",
        sa.Column("evaluation_id", sa.String(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("service_id", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["audit_evaluation.id"],
            name="fk_audit_input_archive_evaluation_id_audit_evaluation",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("evaluation_id", name="pk_audit_input_archive"),
    )
    op.create_index("ix_audit_input_archive_recorded_at", "audit_input_archive", ["recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_input_archive_recorded_at", table_name="audit_input_archive")
    op.drop_table("audit_input_archive")
    op.drop_index("ix_audit_shadow_firing_rule_id", table_name="audit_shadow_firing")
    op.drop_table("audit_shadow_firing")
