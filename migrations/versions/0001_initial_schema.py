"""Initial schema: every core table of the service.

Users, API tokens, device connections, webhook inbox, signal readings, meter snapshots, calendar events,
recommendations, feedback, adapters, fine-tune jobs and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 16:59:05.154391
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the enum values at this revision: changing a Python enum later needs its own migration.
ADAPTER_STATUSES = (
    "ready",
    "active",
    "retired",
)
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
IDEMPOTENCY_STATUSES = (
    "in_progress",
    "completed",
)
FINETUNE_STATUSES = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
RESPONSES = (
    "accepted",
    "ignored",
    "rescheduled",
)

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_table(
        "adapters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("base_model", sa.String(length=255), nullable=False),
        sa.Column("uri", sa.String(length=1024), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("trained_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trained_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("n_interactions", sa.Integer(), nullable=False),
        sa.Column("metrics", JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_adapters_user_id_users"), ondelete="CASCADE"
        ),
        _one_of("status", ADAPTER_STATUSES, name=op.f("ck_adapters_adapter_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adapters")),
        sa.UniqueConstraint("name", name=op.f("uq_adapters_name")),
        sa.UniqueConstraint("user_id", "version", name=op.f("uq_adapters_user_id_version")),
    )
    op.create_index(op.f("ix_adapters_user_id"), "adapters", ["user_id"], unique=False)
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_prefix"), "api_tokens", ["prefix"], unique=False)
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "calendar_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=1024), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("ends_at >= starts_at", name=op.f("ck_calendar_events_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_calendar_events_user_id_users"), ondelete="CASCADE"
        ),
        _one_of("action", ACTIONS, name=op.f("ck_calendar_events_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_events")),
        sa.UniqueConstraint(
            "user_id", "source", "external_id", name=op.f("uq_calendar_events_user_id_source_external_id")
        ),
    )
    op.create_index(op.f("ix_calendar_events_user_id"), "calendar_events", ["user_id"], unique=False)
    op.create_index(
        "ix_calendar_events_user_id_starts_at", "calendar_events", ["user_id", "starts_at"], unique=False
    )
    op.create_table(
        "device_connections",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("external_user_id", sa.String(length=255), nullable=False),
        sa.Column("access_token_encrypted", sa.Text(), nullable=True),
        sa.Column("refresh_token_encrypted", sa.Text(), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scopes", sa.String(length=1024), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_device_connections_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_connections")),
        sa.UniqueConstraint(
            "provider", "external_user_id", name=op.f("uq_device_connections_provider_external_user_id")
        ),
    )
    op.create_index(op.f("ix_device_connections_user_id"), "device_connections", ["user_id"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("response_body", JSON, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_idempotency_keys_user_id_users"), ondelete="CASCADE"
        ),
        _one_of("status", IDEMPOTENCY_STATUSES, name=op.f("ck_idempotency_keys_idempotency_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("user_id", "key", name=op.f("uq_idempotency_keys_user_id_key")),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"], unique=False)
    op.create_index(op.f("ix_idempotency_keys_user_id"), "idempotency_keys", ["user_id"], unique=False)
    op.create_table(
        "meter_snapshots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("vitality", sa.Double(), nullable=False),
        sa.Column("cognition", sa.Double(), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("serenity", sa.Double(), nullable=False),
        sa.Column("connection", sa.Double(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            "cognition >= 0 AND cognition <= 1", name=op.f("ck_meter_snapshots_cognition_unit")
        ),
        sa.CheckConstraint(
            "connection >= 0 AND connection <= 1", name=op.f("ck_meter_snapshots_connection_unit")
        ),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_meter_snapshots_progress_unit")),
        sa.CheckConstraint("serenity >= 0 AND serenity <= 1", name=op.f("ck_meter_snapshots_serenity_unit")),
        sa.CheckConstraint("vitality >= 0 AND vitality <= 1", name=op.f("ck_meter_snapshots_vitality_unit")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_meter_snapshots_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_snapshots")),
    )
    op.create_index(op.f("ix_meter_snapshots_user_id"), "meter_snapshots", ["user_id"], unique=False)
    op.create_index(
        "ix_meter_snapshots_user_id_taken_at", "meter_snapshots", ["user_id", "taken_at"], unique=False
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("raw_body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", JSON, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_webhook_events_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("source", "external_id", name=op.f("uq_webhook_events_source_external_id")),
    )
    op.create_index(op.f("ix_webhook_events_user_id"), "webhook_events", ["user_id"], unique=False)
    op.create_table(
        "finetune_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("params", JSON, nullable=True),
        sa.Column("adapter_id", sa.Uuid(), nullable=True),
        sa.Column("adapter_uri", sa.String(length=1024), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["adapter_id"],
            ["adapters.id"],
            name=op.f("fk_finetune_jobs_adapter_id_adapters"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_finetune_jobs_user_id_users"), ondelete="CASCADE"
        ),
        _one_of("status", FINETUNE_STATUSES, name=op.f("ck_finetune_jobs_finetune_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finetune_jobs")),
    )
    op.create_index(op.f("ix_finetune_jobs_adapter_id"), "finetune_jobs", ["adapter_id"], unique=False)
    op.create_index(
        "ix_finetune_jobs_status_heartbeat_at", "finetune_jobs", ["status", "heartbeat_at"], unique=False
    )
    op.create_index(op.f("ix_finetune_jobs_user_id"), "finetune_jobs", ["user_id"], unique=False)
    op.create_table(
        "recommendations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("vitality", sa.Double(), nullable=False),
        sa.Column("cognition", sa.Double(), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("serenity", sa.Double(), nullable=False),
        sa.Column("connection", sa.Double(), nullable=False),
        sa.Column("neutral_meters", sa.Boolean(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("probabilities", JSON, nullable=False),
        sa.Column("propensity", sa.Double(), nullable=False),
        sa.Column("temperature", sa.Double(), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("adapter", sa.String(length=255), nullable=True),
        sa.Column("adapter_id", sa.Uuid(), nullable=True),
        sa.Column("backend", sa.String(length=16), nullable=False),
        sa.Column("prompt_hash", sa.String(length=64), nullable=True),
        sa.Column("belief", JSON, nullable=True),
        sa.CheckConstraint(
            "cognition >= 0 AND cognition <= 1", name=op.f("ck_recommendations_cognition_unit")
        ),
        sa.CheckConstraint(
            "connection >= 0 AND connection <= 1", name=op.f("ck_recommendations_connection_unit")
        ),
        sa.CheckConstraint("day >= 0 AND day <= 6", name=op.f("ck_recommendations_day_of_week")),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_recommendations_progress_unit")),
        sa.CheckConstraint(
            "propensity >= 0 AND propensity <= 1", name=op.f("ck_recommendations_propensity_unit")
        ),
        sa.CheckConstraint("serenity >= 0 AND serenity <= 1", name=op.f("ck_recommendations_serenity_unit")),
        sa.CheckConstraint("slot >= 0 AND slot <= 3", name=op.f("ck_recommendations_slot_of_day")),
        sa.CheckConstraint("temperature > 0", name=op.f("ck_recommendations_temperature_positive")),
        sa.CheckConstraint("vitality >= 0 AND vitality <= 1", name=op.f("ck_recommendations_vitality_unit")),
        sa.ForeignKeyConstraint(
            ["adapter_id"],
            ["adapters.id"],
            name=op.f("fk_recommendations_adapter_id_adapters"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_recommendations_user_id_users"), ondelete="CASCADE"
        ),
        _one_of("action", ACTIONS, name=op.f("ck_recommendations_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendations")),
    )
    op.create_index(op.f("ix_recommendations_adapter_id"), "recommendations", ["adapter_id"], unique=False)
    op.create_index(op.f("ix_recommendations_user_id"), "recommendations", ["user_id"], unique=False)
    op.create_index(
        "ix_recommendations_user_id_created_at", "recommendations", ["user_id", "created_at"], unique=False
    )
    op.create_table(
        "signal_readings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("webhook_event_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_signal_readings_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["webhook_event_id"],
            ["webhook_events.id"],
            name=op.f("fk_signal_readings_webhook_event_id_webhook_events"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signal_readings")),
        sa.UniqueConstraint(
            "user_id",
            "source",
            "kind",
            "observed_at",
            name=op.f("uq_signal_readings_user_id_source_kind_observed_at"),
        ),
    )
    op.create_index(op.f("ix_signal_readings_user_id"), "signal_readings", ["user_id"], unique=False)
    op.create_index(
        "ix_signal_readings_user_id_observed_at", "signal_readings", ["user_id", "observed_at"], unique=False
    )
    op.create_index(
        op.f("ix_signal_readings_webhook_event_id"), "signal_readings", ["webhook_event_id"], unique=False
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("recommendation_id", sa.Uuid(), nullable=False),
        sa.Column("response", sa.String(length=32), nullable=False),
        sa.Column("reward", sa.Integer(), nullable=False),
        sa.Column("rescheduled_to", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("reward IN (-1, 1)", name=op.f("ck_feedback_reward_sign")),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendations.id"],
            name=op.f("fk_feedback_recommendation_id_recommendations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_feedback_user_id_users"), ondelete="CASCADE"
        ),
        _one_of("response", RESPONSES, name=op.f("ck_feedback_response")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("recommendation_id", name=op.f("uq_feedback_recommendation_id")),
    )
    op.create_index(op.f("ix_feedback_user_id"), "feedback", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_user_id"), table_name="feedback")
    op.drop_table("feedback")
    op.drop_index(op.f("ix_signal_readings_webhook_event_id"), table_name="signal_readings")
    op.drop_index("ix_signal_readings_user_id_observed_at", table_name="signal_readings")
    op.drop_index(op.f("ix_signal_readings_user_id"), table_name="signal_readings")
    op.drop_table("signal_readings")
    op.drop_index("ix_recommendations_user_id_created_at", table_name="recommendations")
    op.drop_index(op.f("ix_recommendations_user_id"), table_name="recommendations")
    op.drop_index(op.f("ix_recommendations_adapter_id"), table_name="recommendations")
    op.drop_table("recommendations")
    op.drop_index(op.f("ix_finetune_jobs_user_id"), table_name="finetune_jobs")
    op.drop_index("ix_finetune_jobs_status_heartbeat_at", table_name="finetune_jobs")
    op.drop_index(op.f("ix_finetune_jobs_adapter_id"), table_name="finetune_jobs")
    op.drop_table("finetune_jobs")
    op.drop_index(op.f("ix_webhook_events_user_id"), table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_index("ix_meter_snapshots_user_id_taken_at", table_name="meter_snapshots")
    op.drop_index(op.f("ix_meter_snapshots_user_id"), table_name="meter_snapshots")
    op.drop_table("meter_snapshots")
    op.drop_index(op.f("ix_idempotency_keys_user_id"), table_name="idempotency_keys")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index(op.f("ix_device_connections_user_id"), table_name="device_connections")
    op.drop_table("device_connections")
    op.drop_index("ix_calendar_events_user_id_starts_at", table_name="calendar_events")
    op.drop_index(op.f("ix_calendar_events_user_id"), table_name="calendar_events")
    op.drop_table("calendar_events")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_index(op.f("ix_api_tokens_prefix"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_index(op.f("ix_adapters_user_id"), table_name="adapters")
    op.drop_table("adapters")
    op.drop_table("users")
