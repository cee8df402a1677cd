"""Room in the audit trail for the longest targets: an override is "<user id>/<interaction type>".

Revision ID: 0004_wider_audit_target
Revises: 0003_usage_and_prices
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_wider_audit_target"
down_revision: str | None = "0003_usage_and_prices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entries") as batch:
        batch.alter_column("target_id", type_=sa.String(512), existing_type=sa.String(255), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_entries") as batch:
        batch.alter_column("target_id", type_=sa.String(255), existing_type=sa.String(512), existing_nullable=False)
