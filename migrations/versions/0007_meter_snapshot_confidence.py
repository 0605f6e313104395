"""Missing meters: nullable meter columns, per-meter confidence, provenance, per-user recompute coalescing.

``meter_snapshots`` gains a confidence column per meter, the engine's ``provenance`` and ``engine_version``;
its meter columns become nullable (a meter with no fresh input is NULL with confidence 0, not 0.5). The
``recommendations`` meter columns become nullable to match. ``meter_recomputes`` holds one row per user so a
burst of readings queues one recompute, not one per reading.

Column names come from ``domain`` (the one place meter names are spelled). Downgrading fills NULL meters with
the neutral 0.5 the old schema's renderer showed, so the NOT NULL constraints can come back.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-03 02:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from domain import METER_NAMES

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONFIDENCE_COLUMNS = tuple(f"{name}_confidence" for name in METER_NAMES)
NEUTRAL = 0.5


def upgrade() -> None:
    with op.batch_alter_table("meter_snapshots") as batch:
        for name in METER_NAMES:
            batch.alter_column(name, existing_type=sa.Double(), nullable=True)
        batch.add_column(sa.Column("engine_version", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column(
                "provenance",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        for column in CONFIDENCE_COLUMNS:
            batch.add_column(sa.Column(column, sa.Double(), nullable=True))
            batch.create_check_constraint(
                op.f(f"ck_meter_snapshots_{column}_unit"), f"{column} >= 0 AND {column} <= 1"
            )
    with op.batch_alter_table("recommendations") as batch:
        for name in METER_NAMES:
            batch.alter_column(name, existing_type=sa.Double(), nullable=True)
    op.create_table(
        "meter_recomputes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_token", sa.Uuid(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_meter_recomputes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_recomputes")),
        sa.UniqueConstraint("user_id", name=op.f("uq_meter_recomputes_user_id")),
    )
    op.create_index(op.f("ix_meter_recomputes_user_id"), "meter_recomputes", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_meter_recomputes_user_id"), table_name="meter_recomputes")
    op.drop_table("meter_recomputes")
    for table in ("recommendations", "meter_snapshots"):
        for name in METER_NAMES:
            op.execute(
                sa.text(f"UPDATE {table} SET {name} = :neutral WHERE {name} IS NULL").bindparams(
                    neutral=NEUTRAL
                )
            )
    with op.batch_alter_table("recommendations") as batch:
        for name in METER_NAMES:
            batch.alter_column(name, existing_type=sa.Double(), nullable=False)
    with op.batch_alter_table("meter_snapshots") as batch:
        for column in reversed(CONFIDENCE_COLUMNS):
            batch.drop_constraint(op.f(f"ck_meter_snapshots_{column}_unit"), type_="check")
            batch.drop_column(column)
        batch.drop_column("provenance")
        batch.drop_column("engine_version")
        for name in METER_NAMES:
            batch.alter_column(name, existing_type=sa.Double(), nullable=False)
