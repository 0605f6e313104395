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
    """A fine-tune run. The database, not the broker, holds its state and lease (``heartbeat_at``)."""

    __tablename__ = "finetune_jobs"
    __table_args__ = (Index("ix_finetune_jobs_status_heartbeat_at", "status", "heartbeat_at"),)

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
