"""recommendations.at: the moment a recommendation is for.

``day``/``slot`` alone cannot order a history or place it in a window of days; the prompt history is the
user's recommendations ordered by ``at`` within a window of whole local days, read through (user_id, at).
Existing rows get their creation time, which is what ``at`` defaults to.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("recommendations", sa.Column("at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE recommendations SET at = created_at")
    # Batch mode: SQLite cannot ALTER a column's nullability in place (it recreates the table).
    with op.batch_alter_table("recommendations") as batch:
        batch.alter_column("at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_recommendations_user_id_at", "recommendations", ["user_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_recommendations_user_id_at", table_name="recommendations")
    with op.batch_alter_table("recommendations") as batch:
        batch.drop_column("at")
