"""Audit store: evaluations, fired cards, feedback.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full (only the UTCDateTime storage adapter is imported) so that later model changes
never rewrite history; ``tests/audit/test_migrations.py`` checks that head matches the models.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from cds.audit.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_evaluation",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("service_id", sa.String(), nullable=False),
        sa.Column("hook", sa.String(), nullable=False),
        sa.Column("hook_instance", sa.String(), nullable=False),
        sa.Column("patient_id", sa.String(), nullable=True),
        sa.Column("ruleset_digest", sa.String(), nullable=False),
        sa.Column("t0", UTCDateTime(), nullable=True),
        sa.Column("kap", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("data_outcomes", _json(), nullable=False),
        sa.Column("card_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_evaluation"),
    )
    op.create_index("ix_audit_evaluation_recorded_at", "audit_evaluation", ["recorded_at"])

    op.create_table(
        "audit_card",
        sa.Column("evaluation_id", sa.String(), nullable=False),
        sa.Column("card_uuid", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(), nullable=False),
        sa.Column("rule_version", sa.String(), nullable=False),
        sa.Column("family", sa.String(), nullable=False),
        sa.Column("indicator", sa.String(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("facts", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["audit_evaluation.id"],
            name="fk_audit_card_evaluation_id_audit_evaluation",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("evaluation_id", "card_uuid", name="pk_audit_card"),
    )
    op.create_index("ix_audit_card_card_uuid", "audit_card", ["card_uuid"])
    op.create_index("ix_audit_card_rule_id", "audit_card", ["rule_id"])

    op.create_table(
        "audit_feedback",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("service_id", sa.String(), nullable=False),
        sa.Column("card_uuid", sa.String(), nullable=False),
        sa.Column("evaluation_id", sa.String(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("accepted_suggestions", _json(), nullable=False),
        sa.Column("override_system", sa.String(), nullable=True),
        sa.Column("override_code", sa.String(), nullable=True),
        sa.Column("override_display", sa.Text(), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
        sa.Column("outcome_timestamp", UTCDateTime(), nullable=True),
        sa.Column("unknown_card", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["audit_evaluation.id"],
            name="fk_audit_feedback_evaluation_id_audit_evaluation",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_audit_feedback"),
    )
    op.create_index("ix_audit_feedback_card_uuid", "audit_feedback", ["card_uuid"])
    op.create_index("ix_audit_feedback_received_at", "audit_feedback", ["received_at"])


def downgrade() -> None:
    op.drop_table("audit_feedback")
    op.drop_table("audit_card")
    op.drop_table("audit_evaluation")
