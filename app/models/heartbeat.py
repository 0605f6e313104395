"""Heartbeats of the background processes (Celery workers, beat), read by ``/readyz``.

The embedded broker of ``make run`` (kombu's SQLAlchemy transport) has no remote control, so ``inspect
ping`` cannot tell whether a worker lives. Each process instead stamps its own row here every few seconds;
the age of the newest stamp is its liveness. Operational state, not personal data: no user owns these rows.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, str_enum, utcnow


class ProcessKind(enum.StrEnum):
    WORKER = "worker"
    BEAT = "beat"


class ProcessHeartbeat(Base):
    """One row per background process instance (a worker node name, or ``beat@host``)."""

    __tablename__ = "process_heartbeats"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[ProcessKind] = mapped_column(str_enum(ProcessKind, "process_kind"), index=True)
    pid: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by a clean shutdown: the process said goodbye, so it is not alive whatever the age of beat_at.
    stopped_at: Mapped[datetime | None]
