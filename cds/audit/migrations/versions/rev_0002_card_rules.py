"""One audit_card row per rule a card stands for (the readiness checklist lists several).

Revision ID: 0002
Revises: 0004
Create Date: 2026-12-07

A consolidated card carries one uuid for several rules; each rule is audited as fired, and
feedback on the card counts for each. The primary key becomes (evaluation, card, rule), and the
variant that fired is kept beside the rule version, and ``line`` orders the rules of one card
(the order of the card's lines). Existing rows (one rule per card) keep
their meaning; their variant is unknown (NULL).

It revises 0004 (not 0001): 0004 (shadow firings, input archive) reached main first, also on top
of 0001, and a single line of revisions keeps ``alembic upgrade head`` unambiguous.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch: SQLite cannot change a primary key in place (the table is copied); PostgreSQL
    # alters it directly.
    with op.batch_alter_table("audit_card") as batch:
        batch.add_column(sa.Column("variant", sa.String(), nullable=True))
        batch.add_column(
            sa.Column("line", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.drop_constraint("pk_audit_card", type_="primary")
        batch.create_primary_key("pk_audit_card", ["evaluation_id", "card_uuid", "rule_id"])


def downgrade() -> None:
    # Keeps the first rule of each consolidated card (the one-rule-per-card shape of 0001).
    op.execute(
        "DELETE FROM audit_card WHERE EXISTS (SELECT 1 FROM audit_card AS other "
        "WHERE other.evaluation_id = audit_card.evaluation_id "
        "AND other.card_uuid = audit_card.card_uuid AND other.rule_id < audit_card.rule_id)"
    )
    with op.batch_alter_table("audit_card") as batch:
        batch.drop_constraint("pk_audit_card", type_="primary")
        batch.create_primary_key("pk_audit_card", ["evaluation_id", "card_uuid"])
        batch.drop_column("line")
        batch.drop_column("variant")
