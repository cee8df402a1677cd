"""API tokens may be limited to some interaction types (client tokens of agents).

Revision ID: 0005_token_interaction_types
Revises: 0004_wider_audit_target
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_token_interaction_types"
down_revision: str | None = "0004_wider_audit_target"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: every interaction type. A list: only those (checked when the token is used).
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("interaction_types", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("interaction_types")
