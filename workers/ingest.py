"""Ingest tasks (queue ``ingest``): process stored webhook events; pull wearables' REST APIs (backfill on
link, the daily reconcile) and keep Oura's subscriptions alive.

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
from app.core.tasks import (
    BACKFILL_CONNECTION,
    ENSURE_OURA_SUBSCRIPTIONS,
    PROCESS_WEBHOOK_EVENT,
    RECONCILE_WEARABLES,
)
from app.models.base import utcnow
from app.wearables import service as wearables
from app.webhooks import service
from bridges.oauth import ProviderUnavailable
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
    if processed.failed:
        log.warning("webhook_event_left_failed", event_id=event_id)
        return 0
    log.info(
        "webhook_event_handled", event_id=event_id, readings=processed.written, rejected=processed.rejected
    )
    return processed.written


@shared_task(bind=True, name=BACKFILL_CONNECTION, max_retries=5)  # type: ignore[untyped-decorator]
def backfill_connection(self: Task, connection_id: str, days: int | None = None) -> int:
    """Pull a connection's last ``days`` days (default: the backfill window, on link); idempotent."""
    settings = get_settings()
    window = days or settings.wearable_backfill_days
    try:
        with task_session(settings.sync_database_url) as session:
            written = wearables.pull_connection(session, settings, uuid.UUID(connection_id), utcnow(), window)
            provider = wearables.provider_of(session, uuid.UUID(connection_id))
        if days is None and provider == "oura":
            # On link: Oura pushes only through our app's subscriptions, so make sure they exist now rather
            # than at the next daily check.
            wearables.ensure_oura_subscriptions(settings, utcnow())
        return written
    except ProviderUnavailable as exc:
        countdown = service.retry_delay(settings, self.request.retries + 1)
        log.warning("wearable_pull_retry", connection_id=connection_id, reason=str(exc))
        raise self.retry(countdown=countdown, exc=exc) from exc


@shared_task(name=RECONCILE_WEARABLES)  # type: ignore[untyped-decorator]
def reconcile_wearables() -> int:
    """Beat, daily: re-read the recent days of every pulled connection (recovers lost pushes)."""
    settings = get_settings()
    with task_session(settings.sync_database_url) as session:
        count = wearables.schedule_reconcile(session, settings)
    log.info("wearables_reconcile_scheduled", connections=count)
    return count


@shared_task(bind=True, name=ENSURE_OURA_SUBSCRIPTIONS, max_retries=5)  # type: ignore[untyped-decorator]
def ensure_oura_subscriptions(self: Task) -> int:
    """Beat, daily (harmless at any time): Oura's webhook subscriptions exist and are not about to lapse."""
    settings = get_settings()
    try:
        return wearables.ensure_oura_subscriptions(settings, utcnow())
    except ProviderUnavailable as exc:
        raise self.retry(countdown=service.retry_delay(settings, self.request.retries + 1), exc=exc) from exc
