"""Usage records and the model price table, seeded with public list prices of the default models.

Revision ID: 0003_usage_and_prices
Revises: 0002_api_tokens_and_audit
Create Date: 2026-11-26
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003_usage_and_prices"
down_revision: str | None = "0002_api_tokens_and_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# USD per million tokens (input, output), from the providers' public price lists.
LIST_PRICES = [
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("text-embedding-3-small", 0.02, 0.0),
    ("text-embedding-3-large", 0.13, 0.0),
    ("claude-opus-4-1", 15.00, 75.00),
    ("claude-sonnet-4-5", 3.00, 15.00),
    ("claude-haiku-4-5", 1.00, 5.00),
]


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interaction_type", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("provider_id", sa.String(36), nullable=True),
        sa.Column("provider_name", sa.String(100), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("error_class", sa.String(100), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
    )
    op.create_index(op.f("ix_usage_records_at"), "usage_records", ["at"])
    prices = op.create_table(
        "model_prices",
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("input_per_million", sa.Float(), nullable=False),
        sa.Column("output_per_million", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("model_name", name=op.f("pk_model_prices")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        prices,
        [
            {"model_name": m, "input_per_million": i, "output_per_million": o, "updated_at": now, "version": 1}
            for m, i, o in LIST_PRICES
        ],
    )


def downgrade() -> None:
    op.drop_table("model_prices")
    op.drop_index(op.f("ix_usage_records_at"), table_name="usage_records")
    op.drop_table("usage_records")
