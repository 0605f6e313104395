"""Connection jobs: give a deleted connection's grant back at the provider (``default`` queue)."""

from __future__ import annotations

import uuid

from celery import shared_task

from app.connections import revocations
from app.core.config import get_settings
from app.core.db import task_session
from app.core.tasks import DRAIN_PENDING_REVOCATIONS, REVOKE_CONNECTION
from app.models.base import utcnow


@shared_task(name=REVOKE_CONNECTION)  # type: ignore[untyped-decorator]
def revoke_connection(revocation_id: str) -> bool:
    """One pending revocation, enqueued after the commit that deleted the connection. Idempotent: a row that
    is gone or being processed elsewhere is left alone; a failure is rescheduled in the row, not by Celery."""
    settings = get_settings()
    with task_session(settings.sync_database_url) as session:
        return revocations.process(session, settings, uuid.UUID(revocation_id), utcnow())


@shared_task(name=DRAIN_PENDING_REVOCATIONS)  # type: ignore[untyped-decorator]
def drain_pending_revocations() -> int:
    """From beat: every pending revocation whose retry is due (and any whose first enqueue was lost)."""
    settings = get_settings()
    with task_session(settings.sync_database_url) as session:
        ids = revocations.due(session, utcnow())
    done = 0
    for revocation_id in ids:
        # One transaction per row: a slow provider holds back no other row's progress.
        with task_session(settings.sync_database_url) as session:
            done += revocations.process(session, settings, revocation_id, utcnow())
    return done
