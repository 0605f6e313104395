"""Per-user LoRA adapters and the fine-tune jobs that produce them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin, IdMixin, JSONType, UserOwnedMixin, str_enum


class AdapterStatus(enum.StrEnum):
    READY = "ready"
    ACTIVE = "active"
    RETIRED = "retired"


class FinetuneStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Not eligible (too little history or too few answers): the reason is on the job.
    SKIPPED = "skipped"


class Adapter(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """A trained LoRA adapter. It is derived personal data: it goes when the user goes."""

    __tablename__ = "adapters"
    __table_args__ = (UniqueConstraint("user_id", "version"),)

    # Globally unique because vLLM addresses LoRA adapters by name.
    name: Mapped[str] = mapped_column(String(128), unique=True)
    version: Mapped[int]
    base_model: Mapped[str] = mapped_column(String(255))
    uri: Mapped[str] = mapped_column(String(1024))
    status: Mapped[AdapterStatus] = mapped_column(
        str_enum(AdapterStatus, "adapter_status"), default=AdapterStatus.READY
    )
    trained_from: Mapped[datetime | None]
    trained_to: Mapped[datetime | None]
    n_interactions: Mapped[int] = mapped_column(default=0)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class FinetuneJob(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """A fine-tune run. The database, not the broker, holds its state and lease (``heartbeat_at``,
    ``lease_expires_at``): a worker killed mid-job is found by its expired lease and the job runs again.

    One job per user and ISO week (UTC), enforced by a unique constraint: a job whose adapter the gate rejects
    still uses up its week.
    """

    __tablename__ = "finetune_jobs"
    __table_args__ = (
        Index("ix_finetune_jobs_status_heartbeat_at", "status", "heartbeat_at"),
        UniqueConstraint("user_id", "iso_week"),
    )

    status: Mapped[FinetuneStatus] = mapped_column(
        str_enum(FinetuneStatus, "finetune_status"), default=FinetuneStatus.QUEUED
    )
    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    adapter_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("adapters.id", ondelete="SET NULL"), index=True
    )
    adapter_uri: Mapped[str | None] = mapped_column(String(1024))
    error: Mapped[str | None] = mapped_column(Text)
    # ISO week in UTC, e.g. "2026-W49".
    iso_week: Mapped[str] = mapped_column(String(8))
    # The base-model version (policy.finetune.base_model_version) the adapter is trained on.
    base_model: Mapped[str | None] = mapped_column(String(255))
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    # When the job was last handed to the broker: a queued job not picked up long after is sent again.
    enqueued_at: Mapped[datetime | None]
    # Why a job was skipped (eligibility) or held back by the gate.
    reason: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # The offline gate's estimates and decision (promoted / held_back / pooled …).
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
