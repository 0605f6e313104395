"""device_connections: status (active / needs_reconsent / revoked), its reason, provider state.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 02:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("device_connections") as batch:
        batch.add_column(sa.Column("status", sa.String(length=32), server_default="active", nullable=False))
        batch.add_column(sa.Column("status_reason", sa.String(length=1024), nullable=True))
        batch.add_column(
            sa.Column(
                "provider_data",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("device_connections") as batch:
        batch.drop_column("provider_data")
        batch.drop_column("status_reason")
        batch.drop_column("status")
