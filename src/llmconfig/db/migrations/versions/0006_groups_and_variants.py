"""Groups of users with their own entries, ordered memberships, weighted variants of entries, usage by variant.

Revision ID: 0006_groups_and_variants
Revises: 0005_token_interaction_types
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006_groups_and_variants"
down_revision: str | None = "0005_token_interaction_types"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTRY_TABLES = ("global_configs", "user_configs")


def _variant_columns() -> list[sa.Column[object]]:
    # Existing entries have no variants: their own model carries all their traffic.
    return [
        sa.Column("weight", sa.Integer(), nullable=False, server_default=sa.text("100")),
        sa.Column("variants", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    ]


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    for table in ENTRY_TABLES:
        with op.batch_alter_table(table) as batch:
            for column in _variant_columns():
                batch.add_column(column)
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("variant", sa.String(64), nullable=True))

    op.create_table(
        "groups",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_groups")),
    )
    op.create_table(
        "group_configs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "group_name",
            sa.String(64),
            sa.ForeignKey("groups.name", ondelete="RESTRICT", name=op.f("fk_group_configs_group_name_groups")),
            nullable=False,
        ),
        sa.Column(
            "interaction_type",
            sa.String(64),
            sa.ForeignKey(
                "interaction_types.name",
                ondelete="RESTRICT",
                name=op.f("fk_group_configs_interaction_type_interaction_types"),
            ),
            nullable=False,
        ),
        sa.Column(
            "provider_id",
            sa.String(36),
            sa.ForeignKey("providers.id", ondelete="RESTRICT", name=op.f("fk_group_configs_provider_id_providers")),
            nullable=False,
        ),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=True),
        sa.Column("extra_params", sa.JSON(), nullable=False),
        sa.Column("fallbacks", sa.JSON(), nullable=False),
        *_variant_columns(),
        sa.Column("updated_by", sa.String(255), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_configs")),
        sa.UniqueConstraint("group_name", "interaction_type", name=op.f("uq_group_configs_group_name")),
    )
    op.create_index(op.f("ix_group_configs_group_name"), "group_configs", ["group_name"])
    op.create_index(op.f("ix_group_configs_provider_id"), "group_configs", ["provider_id"])
    op.create_table(
        "group_members",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column(
            "group_name",
            sa.String(64),
            sa.ForeignKey("groups.name", ondelete="RESTRICT", name=op.f("fk_group_members_group_name_groups")),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "group_name", name=op.f("pk_group_members")),
        sa.UniqueConstraint("user_id", "position", name=op.f("uq_group_members_user_id")),
    )
    op.create_index(op.f("ix_group_members_group_name"), "group_members", ["group_name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_group_members_group_name"), table_name="group_members")
    op.drop_table("group_members")
    op.drop_index(op.f("ix_group_configs_provider_id"), table_name="group_configs")
    op.drop_index(op.f("ix_group_configs_group_name"), table_name="group_configs")
    op.drop_table("group_configs")
    op.drop_table("groups")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("variant")
    for table in ENTRY_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("variants")
            batch.drop_column("weight")
