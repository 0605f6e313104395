"""Worker-side Google Calendar and Tasks sync. Functions take the task's session and never commit.

* :func:`setup_connection` — after a Google account is linked: its calendars, a push channel each, and a
  first (full) sync requested through the coalescer.
* :func:`sync_calendar` — one calendar, incremental with the stored sync token (full without one, or after a
  410, which first wipes that calendar's events; corrections live in their own table and survive). Every page
  is read before anything is written, and the sync token is that of the last page, stored in the same
  transaction as the events: a failure anywhere leaves the previous token, so no change is skipped.
* :func:`renew_channels` — new channel first, then stop the old one; 404 → the connection needs re-consent.
* :func:`pull_tasks` — Google Tasks changed since the last pull.

``http`` is an ``httplib2.Http``-like object for the API calls (tests pass ``HttpMockSequence``).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httplib2
import structlog
from googleapiclient.errors import HttpError
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.calendar import slots as event_slots
from app.core.config import Settings
from app.core.races import is_foreign_key_violation
from app.models import (
    CalendarCorrection,
    CalendarEvent,
    DeviceConnection,
    Feedback,
    GoogleCalendar,
    GoogleChannel,
    GoogleTask,
    Recommendation,
    User,
)
from app.models.calendar import CorrectionKind
from app.recommend.slots import local_slot, zone
from bridges.actions import InvalidEvent, classify, from_google_event, normalize
from bridges.actions.llm import LlmClassifier, llm_client
from bridges.connections import ConnectionStatus, cipher_for
from bridges.google import coalesce
from bridges.google.client import (
    GoogleAuthLost,
    GoogleClients,
    SyncTokenGone,
    list_calendars,
    list_events,
    list_tasklists,
    list_tasks,
    parse_rfc3339,
    stop_channel,
    watch_events,
)
from bridges.google.push import WEBHOOK_PATH, token_hash
from bridges.oauth.google import credentials_for as oauth_credentials
from bridges.oauth.google import store_credentials
from bridges.oauth.tokens import NotAnOAuthConnection, ReconsentRequired
from domain import Action, Response

log = structlog.get_logger(__name__)

PROVIDER = "google"
EVENT_SOURCE = "google"
SOURCE_USER = "user"
FEEDBACK_SOURCE = "calendar"
TASKS_CURSOR = "google_tasks_updated_min"
# Tasks' updatedMin is compared with Google's clock: re-read a little overlap rather than miss an update.
TASKS_OVERLAP = timedelta(minutes=2)
_WRITABLE_ROLES = frozenset({"owner", "writer"})


@dataclass(frozen=True, slots=True)
class SyncResult:
    upserted: int = 0
    deleted: int = 0
    full: bool = False
    feedback: int = 0
    skipped: bool = False


# --- credentials ---------------------------------------------------------------------------------------


@contextmanager
def google_clients(
    connection: DeviceConnection, settings: Settings, http: httplib2.Http | None = None
) -> Iterator[GoogleClients]:
    """API clients on the connection's google-auth credentials (``bridges.oauth.google``: refreshed before
    expiry under the connection's row lock; a refused refresh is :class:`GoogleAuthLost`). Tokens the
    library refreshed during the calls (a 401 mid-sync) are stored back, encrypted, whatever happens."""
    cipher = cipher_for(settings.secret_key.get_secret_value())
    try:
        credentials = oauth_credentials(connection, settings, cipher)
    except (ReconsentRequired, NotAnOAuthConnection) as exc:
        raise GoogleAuthLost(str(exc)) from exc
    try:
        yield GoogleClients.create(credentials, settings, http)
    finally:
        store_credentials(connection, credentials, cipher)


def usable_connection(session: Session, connection_id: uuid.UUID) -> DeviceConnection | None:
    connection = session.get(DeviceConnection, connection_id)
    if connection is None or connection.provider != PROVIDER:
        return None
    if connection.status != ConnectionStatus.ACTIVE or connection.revoked_at is not None:
        return None
    return connection


# --- setup and channels --------------------------------------------------------------------------------


def _wanted(entry: dict[str, Any]) -> bool:
    # The user's own calendars they show; subscribed ones (holidays, other people's) are not their day.
    if entry.get("deleted"):
        return False
    return bool(entry.get("primary")) or (
        entry.get("accessRole") in _WRITABLE_ROLES and entry.get("selected") is True
    )


def _ms(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError):
        return None


def open_channel(
    session: Session, settings: Settings, clients: GoogleClients, calendar: GoogleCalendar, now: datetime
) -> GoogleChannel:
    """``events.watch`` with a fresh channel id and random token; the token is kept only as its hash."""
    channel_id = str(uuid.uuid4())
    token = secrets.token_urlsafe(32)
    ttl = settings.google_calendar_channel_ttl
    answer = watch_events(
        clients,
        calendar.calendar_id,
        channel_id=channel_id,
        address=settings.public_base_url.rstrip("/") + WEBHOOK_PATH,
        token=token,
        ttl_s=int(ttl.total_seconds()),
    )
    channel = GoogleChannel(
        user_id=calendar.user_id,
        calendar_row_id=calendar.id,
        channel_id=channel_id,
        resource_id=str(answer["resourceId"]),
        token_hash=token_hash(token),
        # Trust what Google granted; it may be shorter than asked.
        expiration=_ms(answer.get("expiration")) or now + ttl,
    )
    session.add(channel)
    session.flush()
    return channel


def setup_connection(
    session: Session,
    settings: Settings,
    connection_id: uuid.UUID,
    now: datetime,
    *,
    http: httplib2.Http | None = None,
) -> list[uuid.UUID]:
    """Calendars of a newly linked account, a channel each (before the first sync, so no change between the
    listing and the channel is missed), and a full sync requested. Idempotent: known calendars with a live
    channel are left alone. Returns the calendar row ids."""
    connection = usable_connection(session, connection_id)
    if connection is None:
        return []
    rows: list[GoogleCalendar] = []
    with google_clients(connection, settings, http) as clients:
        for entry in list_calendars(clients):
            if not _wanted(entry):
                continue
            calendar = session.execute(
                select(GoogleCalendar).where(
                    GoogleCalendar.connection_id == connection.id,
                    GoogleCalendar.calendar_id == str(entry["id"]),
                )
            ).scalar_one_or_none()
            if calendar is None:
                calendar = GoogleCalendar(
                    user_id=connection.user_id,
                    connection_id=connection.id,
                    calendar_id=str(entry["id"]),
                    summary=str(entry.get("summary") or "")[:1024] or None,
                    primary=bool(entry.get("primary")),
                )
                session.add(calendar)
                session.flush()
            live = session.execute(
                select(GoogleChannel.id).where(
                    GoogleChannel.calendar_row_id == calendar.id, GoogleChannel.stopped_at.is_(None)
                )
            ).first()
            if live is None and settings.public_base_url:
                try:
                    open_channel(session, settings, clients, calendar, now)
                except HttpError as exc:
                    # Google refuses addresses that are not public HTTPS (a development setup): the
                    # calendar is still synced, by beat's reconciling pass instead of push.
                    if exc.resp.status != 400:
                        raise
                    log.warning("calendar_watch_refused", calendar_row_id=str(calendar.id), status=400)
            rows.append(calendar)
    for calendar in rows:
        coalesce.request_sync(session, settings, calendar.id, now, debounce=False)
    log.info("calendar_setup", connection_id=str(connection.id), calendars=len(rows))
    return [calendar.id for calendar in rows]


def connections_to_renew(session: Session, settings: Settings, now: datetime) -> list[uuid.UUID]:
    statement = (
        select(GoogleCalendar.connection_id)
        .join(GoogleChannel, GoogleChannel.calendar_row_id == GoogleCalendar.id)
        .where(
            GoogleChannel.stopped_at.is_(None),
            GoogleChannel.expiration < now + settings.google_calendar_renew_before,
        )
        .distinct()
    )
    return list(session.execute(statement).scalars())


def renew_channels(
    session: Session,
    settings: Settings,
    connection_id: uuid.UUID,
    now: datetime,
    *,
    http: httplib2.Http | None = None,
) -> int:
    """Replace the connection's channels that expire within ``google_calendar_renew_before``: open the new
    one first (overlap is allowed), then stop the old. Raises :class:`ChannelGone` on a 404 (the caller marks
    the connection). Returns how many were renewed."""
    connection = usable_connection(session, connection_id)
    if connection is None:
        return 0
    expiring = session.execute(
        select(GoogleChannel, GoogleCalendar)
        .join(GoogleCalendar, GoogleChannel.calendar_row_id == GoogleCalendar.id)
        .where(
            GoogleCalendar.connection_id == connection.id,
            GoogleChannel.stopped_at.is_(None),
            GoogleChannel.expiration < now + settings.google_calendar_renew_before,
        )
    ).all()
    renewed = 0
    with google_clients(connection, settings, http) as clients:
        for old, calendar in expiring:
            open_channel(session, settings, clients, calendar, now)
            stop_channel(clients, channel_id=old.channel_id, resource_id=old.resource_id)
            old.stopped_at = now
            renewed += 1
    log.info("calendar_channels_renewed", connection_id=str(connection.id), renewed=renewed)
    return renewed


def stop_all_channels(
    session: Session, settings: Settings, connection_id: uuid.UUID, now: datetime, *, http: Any = None
) -> int:
    """Stop every live channel of the connection at Google (disconnect, user deletion)."""
    connection = session.get(DeviceConnection, connection_id)
    if connection is None:
        return 0
    channels = (
        session.execute(
            select(GoogleChannel)
            .join(GoogleCalendar, GoogleChannel.calendar_row_id == GoogleCalendar.id)
            .where(GoogleCalendar.connection_id == connection.id, GoogleChannel.stopped_at.is_(None))
        )
        .scalars()
        .all()
    )
    if not channels:
        return 0
    with google_clients(connection, settings, http) as clients:
        for channel in channels:
            stop_channel(clients, channel_id=channel.channel_id, resource_id=channel.resource_id)
            channel.stopped_at = now
    return len(channels)


# --- events --------------------------------------------------------------------------------------------


def _corrections(session: Session, user_id: uuid.UUID) -> dict[tuple[str, str], Action | None]:
    rows = session.execute(
        select(CalendarCorrection.kind, CalendarCorrection.key, CalendarCorrection.action).where(
            CalendarCorrection.user_id == user_id
        )
    ).all()
    return {(kind, key): action for kind, key, action in rows}


def correction_for(
    corrections: dict[tuple[str, str], Action | None],
    event_id: str,
    recurring_event_id: str | None,
    title: str | None,
) -> tuple[bool, Action | None]:
    """The user's verdict for an event, most specific first: the event, its series, its title."""
    keys = [(CorrectionKind.EVENT, event_id)]
    if recurring_event_id:
        keys.append((CorrectionKind.SERIES, recurring_event_id))
    if title and normalize(title):
        keys.append((CorrectionKind.TITLE, normalize(title)[:1024]))
    for key in keys:
        if key in corrections:
            return True, corrections[key]
    return False, None


def wipe_calendar(session: Session, calendar: GoogleCalendar) -> int:
    """Forget the calendar's events (410: the token is gone, the local copy can no longer be trusted)."""
    result = session.execute(
        delete(CalendarEvent).where(
            CalendarEvent.user_id == calendar.user_id, CalendarEvent.calendar_row_id == calendar.id
        )
    )
    calendar.sync_token = None
    return int(getattr(result, "rowcount", 0) or 0)


def sync_calendar(
    session: Session,
    settings: Settings,
    calendar_row_id: uuid.UUID,
    now: datetime,
    *,
    http: httplib2.Http | None = None,
) -> SyncResult:
    """Bring one calendar's events up to date (see the module doc). Raises :class:`GoogleAuthLost`."""
    calendar = session.get(GoogleCalendar, calendar_row_id)
    if calendar is None:
        return SyncResult(skipped=True)
    connection = usable_connection(session, calendar.connection_id)
    user = session.get(User, calendar.user_id)
    if connection is None or user is None:
        return SyncResult(skipped=True)
    wiped = 0
    full = calendar.sync_token is None
    time_min = now - settings.google_calendar_sync_past
    with google_clients(connection, settings, http) as clients:
        try:
            items, token = list_events(
                clients, calendar.calendar_id, sync_token=calendar.sync_token, time_min=time_min
            )
        except SyncTokenGone:
            log.info("calendar_sync_token_gone", calendar_row_id=str(calendar.id))
            wiped = wipe_calendar(session, calendar)
            full = True
            items, token = list_events(clients, calendar.calendar_id, sync_token=None, time_min=time_min)
    with calendar_llm(settings) as llm:
        result = apply_events(session, settings, calendar, user, items, now, llm=llm)
    calendar.sync_token = token
    calendar.last_synced_at = now
    log.info(
        "calendar_synced",
        calendar_row_id=str(calendar.id),
        full=full,
        items=len(items),
        upserted=result.upserted,
        deleted=result.deleted + wiped,
        feedback=result.feedback,
    )
    return SyncResult(
        upserted=result.upserted, deleted=result.deleted + wiped, full=full, feedback=result.feedback
    )


@contextmanager
def calendar_llm(settings: Settings) -> Iterator[LlmClassifier | None]:
    """The classifier's LLM second opinion for one sync run, or ``None`` when it is off (the default)."""
    if not settings.calendar_llm_url:
        yield None
        return
    with llm_client(
        settings.calendar_llm_url,
        settings.calendar_llm_api_key.get_secret_value(),
        settings.calendar_llm_timeout.total_seconds(),
    ) as client:
        yield LlmClassifier(
            client,
            model=settings.calendar_llm_model,
            threshold=settings.calendar_llm_threshold,
            max_calls=settings.calendar_llm_max_calls,
        )


def apply_events(
    session: Session,
    settings: Settings,
    calendar: GoogleCalendar,
    user: User,
    items: list[dict[str, Any]],
    now: datetime,
    *,
    llm: LlmClassifier | None = None,
) -> SyncResult:
    """Upsert (newer ``updated`` wins) or delete (cancelled) each item; classify; infer feedback."""
    tz = zone(user.timezone)
    ids = [str(item.get("id")) for item in items if item.get("id")]
    existing = {
        row.external_id: row
        for row in session.execute(
            select(CalendarEvent).where(
                CalendarEvent.user_id == user.id,
                CalendarEvent.source == EVENT_SOURCE,
                CalendarEvent.external_id.in_(ids),
            )
        ).scalars()
    }
    corrections = _corrections(session, user.id)
    horizon = now + settings.google_calendar_sync_future
    upserted = deleted = inferred = 0
    for item in items:
        event_id = item.get("id")
        if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
            continue
        row = existing.get(event_id)
        updated = _updated(item)
        if (
            row is not None
            and row.updated_at is not None
            and updated is not None
            and updated < row.updated_at
        ):
            continue  # an older copy than the one we hold (pages and retries can reorder)
        if item.get("status") == "cancelled":
            if row is not None:
                session.delete(row)
                existing.pop(event_id)
                deleted += 1
            continue
        try:
            event = from_google_event(item, tz)
        except InvalidEvent as exc:
            log.warning("calendar_event_skipped", calendar_row_id=str(calendar.id), reason=str(exc))
            continue
        if event.start is None:
            continue
        starts_at = event.start.astimezone(UTC)
        ends_at = starts_at + timedelta(minutes=event.minutes or 0)
        if starts_at > horizon:
            continue  # open-ended series expand forever; what is months away says nothing about today
        corrected, corrected_action = correction_for(
            corrections, event_id, event.recurring_event_id, event.title
        )
        verdict = classify(event)
        if llm is not None and not corrected:
            # Only when the user has not already said what it is: their word costs no request.
            verdict = llm.refine(event, verdict)
        if row is None:
            row = CalendarEvent(user_id=user.id, source=EVENT_SOURCE, external_id=event_id)
            session.add(row)
            existing[event_id] = row
        row.calendar_row_id = calendar.id
        row.title = event.title[:1024] or None
        row.starts_at = starts_at
        row.ends_at = ends_at
        row.all_day = event.all_day
        row.updated_at = updated
        row.recurring_event_id = (event.recurring_event_id or "")[:255] or None
        row.event_type = event.event_type[:32]
        row.transparent = event.transparent
        row.attendees = event.attendees
        row.context = verdict.context
        row.slots = (
            None if event.all_day else event_slots.encode(event_slots.covered_slots(starts_at, ends_at, tz))
        )
        if corrected:
            row.action, row.confidence, row.action_source = corrected_action, 1.0, SOURCE_USER
        else:
            row.action, row.confidence, row.action_source = verdict.action, verdict.confidence, verdict.source
        upserted += 1
        session.flush()
        if row.action is not None and not row.all_day and not row.transparent:
            inferred += infer_feedback(session, settings, user, row, now)
    return SyncResult(upserted=upserted, deleted=deleted, feedback=inferred)


def _updated(item: dict[str, Any]) -> datetime | None:
    value = item.get("updated")
    if not isinstance(value, str):
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


# --- implicit feedback ---------------------------------------------------------------------------------


def infer_feedback(
    session: Session, settings: Settings, user: User, event: CalendarEvent, now: datetime
) -> int:
    """The person put a recommended action into their calendar: ``accepted`` when the event covers the
    recommendation's slot, ``rescheduled`` (to the event's start) when it lies in another slot within the
    feedback window. Only recommendations still in their window and without any answer qualify; the answer is
    stored with ``source = calendar`` and never replaces an existing one. One recommendation per event."""
    window = settings.feedback_window
    opened_after = now - window
    answered = select(Feedback.recommendation_id).where(Feedback.user_id == user.id)
    candidates = (
        session.execute(
            select(Recommendation).where(
                Recommendation.user_id == user.id,
                Recommendation.action == event.action,
                or_(Recommendation.at >= opened_after, Recommendation.created_at >= opened_after),
                Recommendation.at >= event.starts_at - window,
                Recommendation.at <= event.ends_at + window,
                Recommendation.id.not_in(answered),
            )
        )
        .scalars()
        .all()
    )
    if not candidates:
        return 0
    tz = zone(user.timezone)

    def rank(rec: Recommendation) -> tuple[int, float]:
        same = event_slots.covers(event.slots, local_slot(rec.at, tz))
        return (0 if same else 1, abs((rec.at - event.starts_at).total_seconds()))

    best = min(candidates, key=rank)
    accepted = rank(best)[0] == 0
    response = Response.ACCEPTED if accepted else Response.RESCHEDULED
    feedback = Feedback(
        user_id=user.id,
        recommendation_id=best.id,
        response=response,
        reward=response.reward,
        rescheduled_to=None if accepted else event.starts_at,
        source=FEEDBACK_SOURCE,
    )
    try:
        with session.begin_nested():
            session.add(feedback)
            session.flush()
    except IntegrityError as exc:
        if is_foreign_key_violation(exc):
            raise
        return 0  # answered meanwhile (explicitly, most likely): that answer stands
    log.info("implicit_feedback", recommendation_id=str(best.id), response=response.value)
    return 1


# --- tasks ---------------------------------------------------------------------------------------------


def _due(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        # Tasks stores only the date; the time part is always midnight UTC.
        return parse_rfc3339(value).date()
    except ValueError:
        return None


def pull_tasks(
    session: Session,
    settings: Settings,
    connection_id: uuid.UUID,
    now: datetime,
    *,
    http: httplib2.Http | None = None,
) -> int:
    """Tasks updated since the last pull (all on the first), upserted by task id, newer ``updated`` wins."""
    connection = usable_connection(session, connection_id)
    if connection is None:
        return 0
    state = dict(connection.provider_data or {})
    cursor = state.get(TASKS_CURSOR)
    updated_min = datetime.fromisoformat(cursor) - TASKS_OVERLAP if isinstance(cursor, str) else None
    written = 0
    with google_clients(connection, settings, http) as clients:
        for tasklist in list_tasklists(clients):
            tasklist_id = str(tasklist["id"])
            for item in list_tasks(clients, tasklist_id, updated_min=updated_min):
                written += _upsert_task(session, connection, tasklist_id, item)
    state[TASKS_CURSOR] = now.isoformat()
    connection.provider_data = state
    return written


def _upsert_task(
    session: Session, connection: DeviceConnection, tasklist_id: str, item: dict[str, Any]
) -> int:
    task_id = item.get("id")
    updated = _updated(item)
    if not isinstance(task_id, str) or not task_id or updated is None:
        return 0
    row = session.execute(
        select(GoogleTask).where(
            GoogleTask.user_id == connection.user_id,
            GoogleTask.connection_id == connection.id,
            GoogleTask.task_id == task_id,
        )
    ).scalar_one_or_none()
    if row is not None and updated < row.updated:
        return 0
    if row is None:
        row = GoogleTask(user_id=connection.user_id, connection_id=connection.id, task_id=task_id)
        session.add(row)
    completed = item.get("completed")
    row.tasklist_id = tasklist_id
    row.title = str(item.get("title") or "")[:1024] or None
    row.status = "completed" if item.get("status") == "completed" else "needsAction"
    row.due = _due(item.get("due"))
    row.completed_at = parse_rfc3339(completed) if isinstance(completed, str) else None
    row.deleted = bool(item.get("deleted", False))
    row.hidden = bool(item.get("hidden", False))
    row.updated = updated
    session.flush()
    return 1
