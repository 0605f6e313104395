"""One sync in flight per calendar, however many notifications arrive, and none lost.

Every reason to sync (a push notification, the first setup, beat) calls :func:`request_sync`, which bumps
the calendar's ``sync_requested`` counter under a row lock and enqueues a sync job (after commit) only when
none is pending. The job :func:`claim`\\ s a short lease (so a redelivered copy does not run concurrently) and
remembers the counter it started from; when it is done, :func:`finish` compares: if notifications arrived
meanwhile, the change they announce may postdate the listing, so one more sync is enqueued. A burst of 50
notifications therefore costs one or two syncs, and a change during a sync is never dropped.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.core import broker, jobs
from app.core.config import Settings
from app.core.tasks import CALENDAR_SYNC, TaskQueue
from app.models import GoogleCalendar

# Longer than any sync runs (the task's hard limit is 300 s): an expired lease means the holder died.
LEASE = timedelta(minutes=6)
# A pending sync older than this whose lease is free lost its job (broker flushed, retries exhausted).
STUCK_AFTER = timedelta(minutes=15)


def _locked(session: Session, calendar_row_id: uuid.UUID) -> GoogleCalendar | None:
    statement = select(GoogleCalendar).where(GoogleCalendar.id == calendar_row_id).with_for_update()
    return session.execute(statement).scalar_one_or_none()


def _job(settings: Settings, calendar: GoogleCalendar, *, debounce: bool) -> jobs.Job:
    countdown = settings.google_calendar_sync_debounce.total_seconds() if debounce else None
    return jobs.Job(CALENDAR_SYNC, (str(calendar.id),), countdown=countdown or None)


def request_sync(
    session: Session, settings: Settings, calendar_row_id: uuid.UUID, now: datetime, *, debounce: bool = True
) -> bool:
    """Note that the calendar changed; enqueue a sync unless one is already pending. True if enqueued.

    The sync is held back ``google_calendar_sync_debounce`` (unless ``debounce`` is off, e.g. the first
    sync of a new account): a solo worker would otherwise sync after every notification of a burst, one
    at a time — never two in flight, but fifty in a row."""
    calendar = _locked(session, calendar_row_id)
    if calendar is None:
        return False
    calendar.sync_requested += 1
    if calendar.sync_pending_since is not None:
        return False
    calendar.sync_pending_since = now
    jobs.enqueue(session, settings, _job(settings, calendar, debounce=debounce))
    return True


def claim(session: Session, calendar_row_id: uuid.UUID, now: datetime) -> int | None:
    """Take the calendar's sync lease → the request counter the sync covers; ``None`` if another copy of the
    job holds it (that copy will see any newer request when it finishes)."""
    statement = (
        update(GoogleCalendar)
        .where(
            GoogleCalendar.id == calendar_row_id,
            or_(GoogleCalendar.sync_lease_until.is_(None), GoogleCalendar.sync_lease_until < now),
        )
        .values(sync_lease_until=now + LEASE)
        .returning(GoogleCalendar.sync_requested)
    )
    return session.execute(statement).scalar_one_or_none()


def finish(
    session: Session, settings: Settings, calendar_row_id: uuid.UUID, seen: int, now: datetime
) -> bool:
    """Release the lease after a successful sync; enqueue one more if requests arrived meanwhile."""
    calendar = _locked(session, calendar_row_id)
    if calendar is None:
        return False
    calendar.sync_completed = max(calendar.sync_completed, seen)
    calendar.sync_lease_until = None
    if calendar.sync_requested > seen:
        calendar.sync_pending_since = now
        jobs.enqueue(session, settings, _job(settings, calendar, debounce=True))
        return True
    calendar.sync_pending_since = None
    return False


def release(session: Session, calendar_row_id: uuid.UUID, *, drop_pending: bool = False) -> None:
    """Give the lease back after a failed attempt. The request stays pending (a retry or beat runs it)
    unless ``drop_pending`` (the connection is unusable: nothing will succeed until the user reconnects)."""
    calendar = _locked(session, calendar_row_id)
    if calendar is None:
        return
    calendar.sync_lease_until = None
    if drop_pending:
        calendar.sync_pending_since = None


def resend_stuck(session: Session, settings: Settings, now: datetime) -> int:
    """Enqueue again the syncs that are pending with a free lease for too long; returns how many. A copy of a
    job that was not lost after all is harmless: the lease keeps one sync at a time, and the request counter
    makes the second one a no-op."""
    # A minute past its debounce when nothing waits on the calendar queue: a killed worker held its message.
    waited = broker.lost_after(
        settings, TaskQueue.CALENDAR, STUCK_AFTER, held_back=settings.google_calendar_sync_debounce
    )
    statement = (
        select(GoogleCalendar)
        .where(
            GoogleCalendar.sync_pending_since < now - waited,
            or_(GoogleCalendar.sync_lease_until.is_(None), GoogleCalendar.sync_lease_until < now),
        )
        .with_for_update(skip_locked=True)
        .limit(500)
    )
    calendars = session.execute(statement).scalars().all()
    for calendar in calendars:
        calendar.sync_pending_since = now
        jobs.enqueue(session, settings, _job(settings, calendar, debounce=False))
    return len(calendars)


def request_stale(session: Session, settings: Settings, now: datetime, older_than: timedelta) -> int:
    """Request a sync of every calendar not synced for ``older_than``: push is not fully reliable (a small
    share of notifications is lost, and a channel can fail to open), so beat reconciles. Returns how many."""
    statement = select(GoogleCalendar.id).where(
        or_(GoogleCalendar.last_synced_at.is_(None), GoogleCalendar.last_synced_at < now - older_than),
        GoogleCalendar.sync_pending_since.is_(None),
    )
    ids = list(session.execute(statement.limit(500)).scalars())
    return sum(request_sync(session, settings, calendar_id, now, debounce=False) for calendar_id in ids)
