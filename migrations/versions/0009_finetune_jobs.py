"""finetune_jobs: ISO week (unique per user), lease, base model, metrics, gate, skip; renderer version.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 02:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the enum values at this revision.
OLD_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
NEW_STATUSES = (*OLD_STATUSES, "skipped")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _one_of(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def upgrade() -> None:
    # No job has ever run before this revision, so a NOT NULL week needs no backfill.
    with op.batch_alter_table("finetune_jobs") as batch:
        batch.add_column(sa.Column("iso_week", sa.String(length=8), nullable=False))
        batch.add_column(sa.Column("base_model", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("metrics", JSON, nullable=True))
        batch.add_column(sa.Column("gate", JSON, nullable=True))
        batch.create_unique_constraint(op.f("uq_finetune_jobs_user_id_iso_week"), ["user_id", "iso_week"])
        batch.drop_constraint(op.f("ck_finetune_jobs_finetune_status"), type_="check")
        batch.create_check_constraint("finetune_status", _one_of(NEW_STATUSES))
    with op.batch_alter_table("recommendations") as batch:
        batch.add_column(sa.Column("renderer_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recommendations") as batch:
        batch.drop_column("renderer_version")
    op.execute("DELETE FROM finetune_jobs WHERE status = 'skipped'")
    with op.batch_alter_table("finetune_jobs") as batch:
        batch.drop_constraint(op.f("ck_finetune_jobs_finetune_status"), type_="check")
        batch.create_check_constraint("finetune_status", _one_of(OLD_STATUSES))
        batch.drop_constraint(op.f("uq_finetune_jobs_user_id_iso_week"), type_="unique")
        for column in (
            "gate",
            "metrics",
            "reason",
            "enqueued_at",
            "lease_expires_at",
            "lease_owner",
            "base_model",
            "iso_week",
        ):
            batch.drop_column(column)
