"""SQL of periodic housekeeping (sync: it runs in Celery workers)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.models import IdempotencyKey


def purge_expired_idempotency_keys(session: Session, now: datetime) -> int:
    """Delete idempotency keys past ``expires_at``; returns how many went."""
    result = session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.expires_at < now).returning(IdempotencyKey.id)
    )
    return len(result.all())
