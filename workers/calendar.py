"""Calendar tasks (queue ``calendar``): account setup, coalesced calendar syncs, channel renewal and the Tasks
pull from beat. Tasks take ids; the transactions are in ``app.calendar.runner``."""

from __future__ import annotations

import uuid

import structlog
from celery import Task, shared_task

from app.calendar import runner
from app.core.config import get_settings
from app.core.tasks import (
    CALENDAR_PULL_TASKS,
    CALENDAR_RENEW_CHANNELS,
    CALENDAR_SETUP_CONNECTION,
    CALENDAR_SYNC,
)
from app.models.base import utcnow

log = structlog.get_logger(__name__)

MAX_RETRIES = 5


def _backoff(retries: int) -> float:
    return float(min(300, 5 * 2**retries))


@shared_task(bind=True, name=CALENDAR_SETUP_CONNECTION, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
def setup_connection(self: Task, connection_id: str) -> int:
    """A Google account was linked: its calendars, channels and first sync. Idempotent."""
    try:
        rows = runner.run_setup(get_settings(), uuid.UUID(connection_id), utcnow())
    except Exception as exc:
        log.warning("calendar_setup_retry", connection_id=connection_id, error=type(exc).__name__)
        raise self.retry(countdown=_backoff(self.request.retries), exc=exc) from exc
    return len(rows)


@shared_task(bind=True, name=CALENDAR_SYNC, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
def sync_calendar(self: Task, calendar_row_id: str) -> int:
    """One coalesced sync of one calendar. After the last retry the request stays pending and beat's
    renewal run sends it again."""
    try:
        result = runner.run_sync(get_settings(), uuid.UUID(calendar_row_id), utcnow())
    except Exception as exc:
        log.warning("calendar_sync_retry", calendar_row_id=calendar_row_id, error=type(exc).__name__)
        raise self.retry(countdown=_backoff(self.request.retries), exc=exc) from exc
    return 0 if result is None else result.upserted


@shared_task(name=CALENDAR_RENEW_CHANNELS)  # type: ignore[untyped-decorator]
def renew_channels() -> int:
    return runner.run_renewals(get_settings(), utcnow())


@shared_task(name=CALENDAR_PULL_TASKS)  # type: ignore[untyped-decorator]
def pull_tasks() -> int:
    return runner.run_task_pulls(get_settings(), utcnow())
