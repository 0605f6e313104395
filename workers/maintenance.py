"""Periodic housekeeping tasks (scheduled by beat, see ``workers.celery_app``)."""

from __future__ import annotations

import structlog

from app.core.config import get_settings
from app.core.db import task_session
from app.maintenance import repository
from app.models.base import utcnow
from workers.celery_app import celery_app

log = structlog.get_logger(__name__)


@celery_app.task(name="rhythm.maintenance.purge_expired_idempotency_keys")  # type: ignore[untyped-decorator]
def purge_expired_idempotency_keys() -> int:
    """Delete expired idempotency keys. Idempotent: running it twice deletes nothing more."""
    with task_session(get_settings().sync_database_url) as session:
        purged = repository.purge_expired_idempotency_keys(session, utcnow())
    log.info("idempotency_keys_purged", count=purged)
    return purged
