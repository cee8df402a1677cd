"""Providers, catalogs, interaction types, global config, user overrides and the config revision counter.

Revision ID: 0001_initial_schema
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial_schema"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUILTIN_INTERACTION_TYPES = [
    ("reasoning", "chat", "Main supervisor thinking and problem solving"),
    ("tools", "chat", "Tool calling and parsing of structured output"),
    ("subagents", "chat", "Specialised agents working on focused tasks"),
    ("planning", "chat", "Breaking work into steps and TODO lists"),
    ("embeddings", "embeddings", "Vectors for search and memory"),
]


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _model_settings(table: str) -> list[sa.Column[object]]:
    """The columns shared by global_configs and user_configs (see ``ModelSettings``)."""
    return [
        sa.Column(
            "provider_id",
            sa.String(36),
            sa.ForeignKey("providers.id", ondelete="RESTRICT", name=op.f(f"fk_{table}_provider_id_providers")),
            nullable=False,
        ),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=True),
        sa.Column("extra_params", sa.JSON(), nullable=False),
        sa.Column("fallbacks", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    interaction_types = op.create_table(
        "interaction_types",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_interaction_types")),
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("provider_type", sa.String(16), nullable=False),
        sa.Column("api_base_url", sa.String(2048), nullable=True),
        sa.Column("api_key_ref", sa.Text(), nullable=True),
        sa.Column("api_key_hint", sa.String(8), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("validation_status", sa.String(16), nullable=False),
        sa.Column("validation_error", sa.Text(), nullable=True),
        sa.Column("validated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_providers_name")),
    )
    op.create_table(
        "provider_models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "provider_id",
            sa.String(36),
            sa.ForeignKey("providers.id", ondelete="CASCADE", name=op.f("fk_provider_models_provider_id_providers")),
            nullable=False,
        ),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_models")),
        sa.UniqueConstraint("provider_id", "model_name", name=op.f("uq_provider_models_provider_id")),
    )
    op.create_index(op.f("ix_provider_models_provider_id"), "provider_models", ["provider_id"])

    op.create_table(
        "global_configs",
        sa.Column(
            "interaction_type",
            sa.String(64),
            sa.ForeignKey(
                "interaction_types.name",
                ondelete="RESTRICT",
                name=op.f("fk_global_configs_interaction_type_interaction_types"),
            ),
            nullable=False,
        ),
        *_model_settings("global_configs"),
        *_timestamps(),
        sa.PrimaryKeyConstraint("interaction_type", name=op.f("pk_global_configs")),
    )
    op.create_index(op.f("ix_global_configs_provider_id"), "global_configs", ["provider_id"])

    op.create_table(
        "user_configs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column(
            "interaction_type",
            sa.String(64),
            sa.ForeignKey(
                "interaction_types.name",
                ondelete="RESTRICT",
                name=op.f("fk_user_configs_interaction_type_interaction_types"),
            ),
            nullable=False,
        ),
        *_model_settings("user_configs"),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_configs")),
        sa.UniqueConstraint("user_id", "interaction_type", name=op.f("uq_user_configs_user_id")),
    )
    op.create_index(op.f("ix_user_configs_user_id"), "user_configs", ["user_id"])
    op.create_index(op.f("ix_user_configs_provider_id"), "user_configs", ["provider_id"])

    config_revision = op.create_table(
        "config_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_revision")),
    )
    op.bulk_insert(config_revision, [{"id": 1, "revision": 0}])

    now = datetime.now(UTC)
    op.bulk_insert(
        interaction_types,
        [
            {
                "name": name,
                "kind": kind,
                "description": description,
                "builtin": True,
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
            for name, kind, description in BUILTIN_INTERACTION_TYPES
        ],
    )


def downgrade() -> None:
    op.drop_table("config_revision")
    op.drop_index(op.f("ix_user_configs_provider_id"), table_name="user_configs")
    op.drop_index(op.f("ix_user_configs_user_id"), table_name="user_configs")
    op.drop_table("user_configs")
    op.drop_index(op.f("ix_global_configs_provider_id"), table_name="global_configs")
    op.drop_table("global_configs")
    op.drop_index(op.f("ix_provider_models_provider_id"), table_name="provider_models")
    op.drop_table("provider_models")
    op.drop_table("providers")
    op.drop_table("interaction_types")
