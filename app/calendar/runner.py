"""The transactions of the calendar jobs (``workers/calendar.py`` calls these; tests call them with a mock
``http``). Each step commits on its own: the lease is taken and released in short transactions so that the
notifications that arrive during a sync (which lock the calendar row briefly) never wait for the sync."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select

from app.calendar import sync
from app.core.config import Settings
from app.core.db import task_session
from app.models import DeviceConnection, GoogleCalendar
from bridges.connections import ConnectionStatus, mark_needs_reconsent
from bridges.google import coalesce
from bridges.google.client import ChannelGone, GoogleAuthLost

log = structlog.get_logger(__name__)

# Beat's renewal pass (every 6 h) also syncs calendars that push has not touched for this long.
RECONCILE_AFTER = timedelta(hours=6)


def _needs_reconsent(settings: Settings, connection_id: uuid.UUID, reason: str) -> None:
    with task_session(settings.sync_database_url) as session:
        connection = session.get(DeviceConnection, connection_id)
        if connection is not None:
            mark_needs_reconsent(connection, reason)
    log.warning("google_connection_needs_reconsent", connection_id=str(connection_id), reason=reason)


def run_sync(
    settings: Settings, calendar_row_id: uuid.UUID, now: datetime, *, http: Any = None
) -> sync.SyncResult | None:
    """Claim → sync → finish (enqueueing one more sync if notifications arrived meanwhile). ``None`` when
    another copy of the job holds the lease. Errors other than lost consent release the lease and propagate
    (the task retries; the request stays pending)."""
    url = settings.sync_database_url
    with task_session(url) as session:
        seen = coalesce.claim(session, calendar_row_id, now)
        calendar = session.get(GoogleCalendar, calendar_row_id)
        connection_id = calendar.connection_id if calendar is not None else None
    if seen is None or connection_id is None:
        return None
    try:
        with task_session(url) as session:
            result = sync.sync_calendar(session, settings, calendar_row_id, now, http=http)
    except GoogleAuthLost as exc:
        _needs_reconsent(settings, connection_id, str(exc))
        with task_session(url) as session:
            coalesce.release(session, calendar_row_id, drop_pending=True)
        return sync.SyncResult(skipped=True)
    except BaseException:
        with task_session(url) as session:
            coalesce.release(session, calendar_row_id)
        raise
    with task_session(url) as session:
        coalesce.finish(session, settings, calendar_row_id, seen, now)
    return result


def run_setup(
    settings: Settings, connection_id: uuid.UUID, now: datetime, *, http: Any = None
) -> list[uuid.UUID]:
    try:
        with task_session(settings.sync_database_url) as session:
            return sync.setup_connection(session, settings, connection_id, now, http=http)
    except GoogleAuthLost as exc:
        _needs_reconsent(settings, connection_id, str(exc))
        return []


def run_renewals(settings: Settings, now: datetime, *, http: Any = None) -> int:
    """Renew expiring channels, connection by connection (one failing account does not stop the others),
    and request a sync of calendars push has not touched (lost syncs are re-sent every minute by
    ``resend_stuck_calendar_syncs``)."""
    url = settings.sync_database_url
    with task_session(url) as session:
        connection_ids = sync.connections_to_renew(session, settings, now)
        coalesce.request_stale(session, settings, now, RECONCILE_AFTER)
    renewed = 0
    for connection_id in connection_ids:
        try:
            with task_session(url) as session:
                renewed += sync.renew_channels(session, settings, connection_id, now, http=http)
        except ChannelGone:
            # The account lost access to a calendar: retrying cannot help, the user must act.
            _needs_reconsent(settings, connection_id, "calendar push channel renewal answered 404")
        except GoogleAuthLost as exc:
            _needs_reconsent(settings, connection_id, str(exc))
        except Exception as exc:  # the next beat run tries again
            log.error(
                "calendar_channel_renewal_failed", connection_id=str(connection_id), error=type(exc).__name__
            )
    return renewed


def run_task_pulls(settings: Settings, now: datetime, *, http: Any = None) -> int:
    url = settings.sync_database_url
    with task_session(url) as session:
        connection_ids = list(
            session.execute(
                select(DeviceConnection.id).where(
                    DeviceConnection.provider == sync.PROVIDER,
                    DeviceConnection.status == ConnectionStatus.ACTIVE,
                    DeviceConnection.revoked_at.is_(None),
                )
            ).scalars()
        )
    pulled = 0
    for connection_id in connection_ids:
        try:
            with task_session(url) as session:
                pulled += sync.pull_tasks(session, settings, connection_id, now, http=http)
        except GoogleAuthLost as exc:
            _needs_reconsent(settings, connection_id, str(exc))
        except Exception as exc:
            log.error("google_tasks_pull_failed", connection_id=str(connection_id), error=type(exc).__name__)
    return pulled
