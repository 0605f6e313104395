"""Google Calendar and Tasks sync: calendars, push channels, corrections, tasks; event classification columns;
feedback.source (app | calendar).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 03:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the action values at this revision.
ACTIONS = (
    "DEEP_WORK",
    "ADMIN_WORK",
    "LEARN",
    "SLEEP",
    "EXERCISE",
    "MEDITATE",
    "FAMILY_TIME",
    "SOCIALIZE",
    "ME_TIME",
    "BINGE_WATCH",
)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _owned(table: str) -> list[Any]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "google_calendars",
        *_owned("google_calendars"),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("calendar_id", sa.String(length=1024), nullable=False),
        sa.Column("summary", sa.String(length=1024), nullable=True),
        sa.Column("primary", sa.Boolean(), nullable=False),
        sa.Column("sync_token", sa.Text(), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sync_requested", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sync_completed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sync_pending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sync_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["device_connections.id"],
            name=op.f("fk_google_calendars_connection_id_device_connections"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "connection_id", "calendar_id", name=op.f("uq_google_calendars_connection_id_calendar_id")
        ),
    )
    op.create_index(op.f("ix_google_calendars_user_id"), "google_calendars", ["user_id"])
    op.create_index(op.f("ix_google_calendars_connection_id"), "google_calendars", ["connection_id"])

    op.create_table(
        "google_channels",
        *_owned("google_channels"),
        sa.Column("calendar_row_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=255), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expiration", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["calendar_row_id"],
            ["google_calendars.id"],
            name=op.f("fk_google_channels_calendar_row_id_google_calendars"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("channel_id", name=op.f("uq_google_channels_channel_id")),
    )
    op.create_index(op.f("ix_google_channels_user_id"), "google_channels", ["user_id"])
    op.create_index(op.f("ix_google_channels_calendar_row_id"), "google_channels", ["calendar_row_id"])

    op.create_table(
        "calendar_corrections",
        *_owned("calendar_corrections"),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ({})".format(", ".join(f"'{a}'" for a in ACTIONS)),
            name=op.f("ck_calendar_corrections_action"),
        ),
        sa.UniqueConstraint("user_id", "kind", "key", name=op.f("uq_calendar_corrections_user_id_kind_key")),
    )
    op.create_index(op.f("ix_calendar_corrections_user_id"), "calendar_corrections", ["user_id"])

    op.create_table(
        "google_tasks",
        *_owned("google_tasks"),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("tasklist_id", sa.String(length=1024), nullable=False),
        sa.Column("task_id", sa.String(length=1024), nullable=False),
        sa.Column("title", sa.String(length=1024), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due", sa.Date(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["device_connections.id"],
            name=op.f("fk_google_tasks_connection_id_device_connections"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("connection_id", "task_id", name=op.f("uq_google_tasks_connection_id_task_id")),
    )
    op.create_index(op.f("ix_google_tasks_user_id"), "google_tasks", ["user_id"])
    op.create_index(op.f("ix_google_tasks_connection_id"), "google_tasks", ["connection_id"])
    op.create_index("ix_google_tasks_user_id_due", "google_tasks", ["user_id", "due"])

    with op.batch_alter_table("calendar_events") as batch:
        batch.add_column(sa.Column("calendar_row_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("recurring_event_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("event_type", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("transparent", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("attendees", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("confidence", sa.Double(), nullable=True))
        batch.add_column(sa.Column("action_source", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("context", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("slots", JSON, nullable=True))
        batch.create_foreign_key(
            op.f("fk_calendar_events_calendar_row_id_google_calendars"),
            "google_calendars",
            ["calendar_row_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_calendar_events_calendar_row_id"), ["calendar_row_id"])

    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("source", sa.String(length=16), server_default="app", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("calendar_events") as batch:
        batch.drop_index(op.f("ix_calendar_events_calendar_row_id"))
        batch.drop_constraint(op.f("fk_calendar_events_calendar_row_id_google_calendars"), type_="foreignkey")
        for column in (
            "slots",
            "context",
            "action_source",
            "confidence",
            "attendees",
            "transparent",
            "event_type",
            "recurring_event_id",
            "calendar_row_id",
        ):
            batch.drop_column(column)
    op.drop_table("google_tasks")
    op.drop_table("calendar_corrections")
    op.drop_table("google_channels")
    op.drop_table("google_calendars")
