"""process_heartbeats: liveness of Celery workers and beat, read by /readyz.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "process_heartbeats",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('worker', 'beat')", name=op.f("ck_process_heartbeats_process_kind")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_process_heartbeats")),
    )
    op.create_index(op.f("ix_process_heartbeats_kind"), "process_heartbeats", ["kind"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_process_heartbeats_kind"), table_name="process_heartbeats")
    op.drop_table("process_heartbeats")
