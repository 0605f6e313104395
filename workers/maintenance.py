"""Periodic housekeeping (scheduled by beat, see ``app.core.tasks``); these tasks run on ``default``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from celery import shared_task
from sqlalchemy.orm import Session

from app.core.config import Settings, get_settings
from app.core.db import task_session
from app.core.tasks import (
    PURGE_EXPIRED_IDEMPOTENCY_KEYS,
    REFRESH_METERS,
    REQUEUE_STALE_WEBHOOK_EVENTS,
    RESEND_STUCK_CALENDAR_SYNCS,
)
from app.maintenance import repository
from app.meters import service as meters
from app.models.base import utcnow
from app.webhooks import service as webhooks
from bridges.google import coalesce

log = structlog.get_logger(__name__)


@shared_task(name=PURGE_EXPIRED_IDEMPOTENCY_KEYS)  # type: ignore[untyped-decorator]
def purge_expired_idempotency_keys() -> int:
    """Delete expired idempotency keys. Idempotent: running it twice deletes nothing more."""
    with task_session(get_settings().sync_database_url) as session:
        purged = repository.purge_expired_idempotency_keys(session, utcnow())
    log.info("idempotency_keys_purged", count=purged)
    return purged


@shared_task(name=REQUEUE_STALE_WEBHOOK_EVENTS)  # type: ignore[untyped-decorator]
def requeue_stale_webhook_events() -> int:
    """Send again the inbox events that were stored but never processed (a lost enqueue, a flushed broker)."""
    return _resend("webhook_events_requeued", webhooks.requeue_stale)


@shared_task(name=REFRESH_METERS)  # type: ignore[untyped-decorator]
def refresh_meters() -> tuple[int, int]:
    """Re-send lost meter recomputes and refresh aged snapshots (both coalesced per user)."""
    settings = get_settings()
    with task_session(settings.sync_database_url) as session:
        resent, refreshed = meters.refresh(session, settings, utcnow())
    if resent or refreshed:
        log.info("meters_refreshed", resent=resent, refreshed=refreshed)
    return resent, refreshed


@shared_task(name=RESEND_STUCK_CALENDAR_SYNCS)  # type: ignore[untyped-decorator]
def resend_stuck_calendar_syncs() -> int:
    """Send again the calendar syncs whose job never started (coalesced per calendar, so harmless twice)."""
    return _resend("calendar_syncs_resent", coalesce.resend_stuck)


def _resend(event: str, sweep: Callable[[Session, Settings, datetime], int]) -> int:
    """One sweeper's pass in its own transaction (what it re-sends goes out after the commit); logged when
    it found something."""
    settings = get_settings()
    with task_session(settings.sync_database_url) as session:
        count = sweep(session, settings, utcnow())
    if count:
        log.info(event, count=count)
    return count
