"""Several API keys per provider: every key in provider_keys, and usage names the key that served a call.

Each provider's key moves from ``providers.api_key_ref`` / ``api_key_hint`` into a row of ``provider_keys``, so a
key is stored once whichever way it was added. A reference stays valid when it moves: the secret backends bind a
secret to the provider's id, not to the row that points at it.

Downgrade moves each provider's first key back into ``providers`` and drops the others from the database (their
secrets stay in the secret backend until deleted by hand).

Revision ID: 0007_provider_keys
Revises: 0005_token_interaction_types
Create Date: 2026-12-01
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007_provider_keys"
down_revision: str | None = "0006_groups_and_variants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The shapes this migration reads and writes, as they are at this revision (not the application's models).
_providers = sa.table(
    "providers",
    sa.column("id", sa.String),
    sa.column("api_key_ref", sa.Text),
    sa.column("api_key_hint", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_keys = sa.table(
    "provider_keys",
    sa.column("id", sa.String),
    sa.column("provider_id", sa.String),
    sa.column("secret_ref", sa.Text),
    sa.column("hint", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    bind = op.get_bind()
    existing = bind.execute(
        sa.select(_providers.c.id, _providers.c.api_key_ref, _providers.c.api_key_hint, _providers.c.created_at).where(
            _providers.c.api_key_ref.is_not(None)
        )
    ).all()
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35 and later), never a batch rebuild of providers: with foreign
    # keys on, dropping the old copy of the table would delete the catalogs and refuse the entries that refer to it.
    op.drop_column("providers", "api_key_ref")
    op.drop_column("providers", "api_key_hint")
    op.create_table(
        "provider_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column(
            "provider_id",
            sa.String(36),
            sa.ForeignKey("providers.id", ondelete="CASCADE", name=op.f("fk_provider_keys_provider_id_providers")),
            nullable=False,
        ),
        sa.Column("secret_ref", sa.Text(), nullable=False),
        sa.Column("hint", sa.String(8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_keys")),
    )
    op.create_index(op.f("ix_provider_keys_provider_id"), "provider_keys", ["provider_id"])
    if existing:
        op.bulk_insert(
            _keys,
            [
                {
                    "id": str(uuid.uuid4()),
                    "provider_id": provider_id,
                    "secret_ref": reference,
                    "hint": hint,
                    "created_at": created_at or datetime.now(UTC),
                }
                for provider_id, reference, hint, created_at in existing
            ],
        )
    op.add_column("usage_records", sa.Column("key_hint", sa.String(8), nullable=True))


def downgrade() -> None:
    op.drop_column("usage_records", "key_hint")
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_keys.c.provider_id, _keys.c.secret_ref, _keys.c.hint).order_by(
            _keys.c.provider_id, _keys.c.created_at, _keys.c.id
        )
    ).all()
    first: dict[str, tuple[str, str | None]] = {}
    for provider_id, reference, hint in rows:
        first.setdefault(provider_id, (reference, hint))
    op.drop_index(op.f("ix_provider_keys_provider_id"), table_name="provider_keys")
    op.drop_table("provider_keys")
    op.add_column("providers", sa.Column("api_key_ref", sa.Text(), nullable=True))
    op.add_column("providers", sa.Column("api_key_hint", sa.String(8), nullable=True))
    for provider_id, (reference, hint) in first.items():
        bind.execute(
            sa.update(_providers).where(_providers.c.id == provider_id).values(api_key_ref=reference, api_key_hint=hint)
        )
