"""Budgets: a cap per interaction type, user, group or provider, per hour, day or month.

Revision ID: 0008_budgets
Revises: 0005_token_interaction_types
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_budgets"
down_revision: str | None = "0007_provider_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("scope", sa.String(300), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("limit_usd", sa.Float(), nullable=True),
        sa.Column("limit_tokens", sa.BigInteger(), nullable=True),
        sa.Column("on_exceed", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_budgets")),
    )
    # Spend is summed per period from the usage table: by time, and by the column a scope names.
    op.create_index(op.f("ix_usage_records_user_id_at"), "usage_records", ["user_id", "at"])
    op.create_index(op.f("ix_usage_records_provider_id_at"), "usage_records", ["provider_id", "at"])
    op.create_index(op.f("ix_usage_records_interaction_type_at"), "usage_records", ["interaction_type", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_records_interaction_type_at"), table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_provider_id_at"), table_name="usage_records")
    op.drop_index(op.f("ix_usage_records_user_id_at"), table_name="usage_records")
    op.drop_table("budgets")
