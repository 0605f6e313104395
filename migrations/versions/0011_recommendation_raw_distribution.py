"""recommendations: the backend's raw distribution, the exploration floor and the evidence combination.

Off-policy evaluation and fine-tunes need to recompute what was sampled from: the model's own distribution
before the person's answers were combined in (policy.evidence) and before exclusions, temperature and floor;
the floor; and the counts and settings of the combination. All nullable: rows logged before this revision
have none of them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

# Frozen here (not imported from app.models) so that this revision means the same forever.
JSON = sa.JSON().with_variant(JSONB(), "postgresql")

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recommendations") as batch:
        batch.add_column(sa.Column("model_probabilities", JSON, nullable=True))
        batch.add_column(sa.Column("exploration_floor", sa.Double(), nullable=True))
        batch.add_column(sa.Column("evidence", JSON, nullable=True))
        batch.create_check_constraint(
            op.f("ck_recommendations_exploration_floor_unit"),
            "exploration_floor IS NULL OR (exploration_floor >= 0 AND exploration_floor < 1)",
        )


def downgrade() -> None:
    with op.batch_alter_table("recommendations") as batch:
        batch.drop_constraint(op.f("ck_recommendations_exploration_floor_unit"), type_="check")
        batch.drop_column("evidence")
        batch.drop_column("exploration_floor")
        batch.drop_column("model_probabilities")
