"""Ingest tasks (queue ``ingest``): process stored webhook events, recompute a user's meters.

The task takes the event id and re-loads the row (the message carries no payload). Failures are counted on the
row and retried with exponential backoff up to ``webhook_max_attempts``; an event that cannot succeed by
retrying (``UnmappableEvent``) is kept with its error and not retried. Either way it stays visible as failed
until a replay succeeds.
"""

from __future__ import annotations

import uuid

import structlog
from celery import Task, shared_task

from app.core.config import get_settings
from app.core.db import task_session
from app.core.tasks import PROCESS_WEBHOOK_EVENT, RECOMPUTE_METERS
from app.meters import service as meters_service
from app.models.base import utcnow
from app.webhooks import service
from bridges.webhooks import UnmappableEvent

log = structlog.get_logger(__name__)


@shared_task(bind=True, name=PROCESS_WEBHOOK_EVENT, max_retries=None)  # type: ignore[untyped-decorator]
def process_webhook_event(self: Task, event_id: str) -> int:
    """Map one inbox event to connections and readings; idempotent (a handled event is left alone)."""
    settings = get_settings()
    event_uuid = uuid.UUID(event_id)
    try:
        with task_session(settings.sync_database_url) as session:
            processed = service.process(session, settings, event_uuid, utcnow())
    except UnmappableEvent as exc:
        with task_session(settings.sync_database_url) as session:
            service.record_failure(session, event_uuid, exc)
        log.warning("webhook_event_unmappable", event_id=event_id, reason=str(exc))
        return 0
    except Exception as exc:
        with task_session(settings.sync_database_url) as session:
            attempts = service.record_failure(session, event_uuid, exc)
        if attempts is None or attempts >= settings.webhook_max_attempts:
            log.error("webhook_event_failed", event_id=event_id, attempts=attempts, error=type(exc).__name__)
            return 0
        countdown = service.retry_delay(settings, attempts)
        log.warning(
            "webhook_event_retry", event_id=event_id, attempts=attempts, countdown=round(countdown, 2)
        )
        raise self.retry(countdown=countdown, exc=exc) from exc
    log.info(
        "webhook_event_handled", event_id=event_id, readings=processed.written, rejected=processed.rejected
    )
    return processed.written


# A recompute is cheap (five weeks of daily values) and idempotent; a failure retries a few times, and the
# next reading for the user queues a fresh one anyway.
RECOMPUTE_MAX_RETRIES = 5


@shared_task(bind=True, name=RECOMPUTE_METERS, max_retries=RECOMPUTE_MAX_RETRIES)  # type: ignore[untyped-decorator]
def recompute_meters(self: Task, user_id: str) -> bool:
    """Store a fresh ``bridge`` meter snapshot for the user; ``False`` when the user no longer exists."""
    settings = get_settings()
    user_uuid = uuid.UUID(user_id)
    try:
        # Free the queue slot first, in its own commit: readings committed from here on queue the next run.
        with task_session(settings.sync_database_url) as session:
            if not meters_service.start(session, user_uuid, utcnow()):
                return False
        with task_session(settings.sync_database_url) as session:
            snapshot = meters_service.recompute(session, user_uuid, utcnow())
    except Exception as exc:
        countdown = service.retry_delay(settings, self.request.retries + 1)
        log.warning("meters_recompute_retry", user_id=user_id, error=type(exc).__name__)
        raise self.retry(countdown=countdown, exc=exc) from exc
    return snapshot is not None
