"""The inbox's business logic: accept a delivery (API) and process a stored event (worker).

Accept: provider lookup (unknown or unconfigured → 404, never open) → signature and freshness (401) → payload
(400, nothing stored) → insert the exact bytes and headers once per ``(source, external_id)`` → enqueue the
processing task after commit, only if the row is new.

Process: lock the row → parse the stored bytes again → resolve the user (stored connection first, then the id
our backend gave the provider) → apply lifecycle changes → convert and validate the readings (``normalise``; a
rejected one, e.g. a stress of -1, is logged with its reason and skipped, never stored) → upsert readings →
``handled_at``. A failure is counted on the row (``attempts``, ``error``) by the task, which retries with
backoff.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

import bridges.providers  # noqa: F401 — registers every provider
from app.core import broker, jobs
from app.core.config import Settings
from app.core.errors import AppError, NotFoundError
from app.core.tasks import PROCESS_WEBHOOK_EVENT, TaskQueue
from app.meters import service as meters
from app.models import DeviceConnection, WebhookEvent
from app.webhooks.repository import InboxRepository, OpsRepository, ProcessingRepository
from app.webhooks.schemas import WebhookEventPage, WebhookEventPublic, WebhookStatus
from bridges.meters.signals import RawReading, Rejection, normalise
from bridges.oauth import ReconsentRequired
from bridges.rest import ConnectionApi, api_base_url
from bridges.webhooks import (
    PATH_SECRET_HEADER,
    ConnectionAction,
    ConnectionChange,
    FetchingProvider,
    MalformedPayload,
    SignatureError,
    UnmappableEvent,
    UserRef,
    WebhookProvider,
    get_provider,
)

log = structlog.get_logger(__name__)

# Credentials are never stored with the event (Google Health echoes its secret as a bearer token).
# Google Calendar's per-channel token is a secret too: checked on arrival, never needed again.
_UNSTORED_HEADERS = frozenset(
    {"authorization", "cookie", "proxy-authorization", PATH_SECRET_HEADER, "x-goog-channel-token"}
)
# An event never attempted this long after arrival lost its enqueue (broker down at commit, flushed queue).
STALE_AFTER = timedelta(minutes=15)
REQUEUE_BATCH = 500
ERROR_MAX_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class Processed:
    """What processing one event did: readings written, and readings the validator rejected."""

    written: int = 0
    rejected: int = 0
    # Kept failed without a retry (the connection needs re-consent); the error is on the event.
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: uuid.UUID | None
    duplicate: bool


def status_of(event: WebhookEvent) -> WebhookStatus:
    if event.handled_at is not None:
        return WebhookStatus.HANDLED
    return WebhookStatus.FAILED if event.error is not None else WebhookStatus.PENDING


def _provider(source: str, settings: Settings) -> WebhookProvider[object]:
    provider = get_provider(source, settings)
    if provider is None:
        # Unknown and unconfigured answer alike: a prober learns nothing about which providers we use.
        raise NotFoundError("Unknown webhook provider")
    return provider


def storable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in _UNSTORED_HEADERS}


async def accept(
    session: AsyncSession,
    settings: Settings,
    source: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
) -> Accepted:
    """Verify and store one delivery; the processing task is enqueued after commit if it is new."""
    provider = _provider(source, settings)
    try:
        provider.verify(headers, body, now)
    except SignatureError as exc:
        log.warning("webhook_rejected", source=source, reason=str(exc))
        raise AppError(401, "Invalid webhook signature", code="invalid_signature") from exc
    try:
        payload = provider.parse(headers, body)
    except MalformedPayload as exc:
        raise AppError(400, "Malformed webhook payload", code="malformed_payload", details=str(exc)) from exc
    try:
        await provider.authenticate(session, headers, payload, now)
    except SignatureError as exc:
        log.warning("webhook_rejected", source=source, reason=str(exc))
        raise AppError(401, "Invalid webhook signature", code="invalid_signature") from exc
    external_id = provider.external_id(headers, payload)
    event_id = await InboxRepository(session).insert_once(
        {
            "id": uuid.uuid4(),
            "source": source,
            "external_id": external_id,
            "raw_body": body,
            "headers": storable_headers(headers),
            "received_at": now,
            "attempts": 0,
        }
    )
    if event_id is None:
        return Accepted(event_id=None, duplicate=True)
    jobs.enqueue(session, settings, jobs.Job(PROCESS_WEBHOOK_EVENT, (str(event_id),)))
    return Accepted(event_id=event_id, duplicate=False)


def answer_challenge(settings: Settings, source: str, query: Mapping[str, str]) -> dict[str, str]:
    """A provider's ``GET`` verification of our callback URL (Oura): the echo it expects, 401 for a wrong
    token, 404 for a provider without such a handshake or not configured."""
    answer = None
    provider = get_provider(source, settings)
    if provider is not None:
        try:
            answer = provider.answer_challenge(query)
        except SignatureError as exc:
            log.warning("webhook_challenge_rejected", source=source, reason=str(exc))
            raise AppError(401, "Invalid verification token", code="invalid_signature") from exc
    if answer is None:
        raise NotFoundError("Unknown webhook provider")
    return answer


def _parse_user_id(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _resolve_user(
    repo: ProcessingRepository, source: str, ref: UserRef, *, link: bool, now: datetime
) -> uuid.UUID | None:
    """Our user for ``ref``: the stored connection wins; else the id our backend gave the provider, which
    (the delivery being signed) creates the connection. ``None`` when neither names a user we have."""
    connection = repo.connection(source, ref.external_user_id) if ref.external_user_id else None
    if connection is not None:
        if link and connection.revoked_at is not None:
            connection.revoked_at = None
        return connection.user_id
    user_id = _parse_user_id(ref.our_user_id)
    if user_id is None or not repo.user_exists(user_id):
        return None
    if ref.external_user_id:
        repo.add_connection(
            DeviceConnection(user_id=user_id, provider=source, external_user_id=ref.external_user_id)
        )
    return user_id


def _apply_change(
    repo: ProcessingRepository, source: str, change: ConnectionChange, now: datetime
) -> uuid.UUID | None:
    if change.action is ConnectionAction.LINK:
        user_id = _resolve_user(repo, source, change.user, link=True, now=now)
        if user_id is None:
            raise UnmappableEvent("authorisation for a user we do not have")
        return user_id
    connection = (
        repo.connection(source, change.user.external_user_id) if change.user.external_user_id else None
    )
    if connection is None:
        # Nothing of ours to unlink or relink; the event is still kept, handled.
        return None
    if change.action is ConnectionAction.UNLINK:
        connection.revoked_at = connection.revoked_at or now
    elif change.new_external_user_id:
        taken = repo.connection(source, change.new_external_user_id)
        if taken is not None and taken.id != connection.id:
            raise UnmappableEvent("the new provider user id is linked to another connection")
        connection.external_user_id = change.new_external_user_id
        connection.revoked_at = None
    return connection.user_id


def _log_rejections(event: WebhookEvent, raw: list[RawReading], rejections: list[Rejection]) -> None:
    for rejection in rejections:
        # A bad value is the device's or the provider's, not ours: retrying would reject it again, and storing
        # it would feed the baselines a sentinel (Garmin's stress -1) as if it were a measurement.
        item = raw[rejection.index]
        log.warning(
            "webhook_reading_rejected",
            event_id=str(event.id),
            source=item.source,
            kind=str(item.kind),
            code=rejection.code,
            reason=rejection.reason,
        )


def _fetch(
    repo: ProcessingRepository,
    settings: Settings,
    provider: FetchingProvider[object],
    source: str,
    payload: object,
    ref: UserRef,
) -> list[RawReading]:
    """Fetch what a notify-only delivery announces, with the token of the connection it names."""
    if ref.external_user_id is None:
        return []  # a handshake (Google Health's verification), about no one
    connection = repo.connection(source, ref.external_user_id)
    if connection is None:
        raise UnmappableEvent("notification for a provider account we have not linked")
    with ConnectionApi(connection, settings, api_base_url(settings, source)) as api:
        return provider.fetch_readings(payload, api)


def process(session: Session, settings: Settings, event_id: uuid.UUID, now: datetime) -> Processed:
    """Handle one stored event. Raises :class:`UnmappableEvent` when retrying cannot help, anything else for a
    retry. Already handled or missing: nothing is written (idempotent, so a replay is safe).

    A notify-only provider's data is fetched here with the user's token. When that grant is gone
    (``ReconsentRequired``) the connection is left ``needs_reconsent`` and the event failed but visible, both
    committed: the user must re-link, and a replay after that fetches the data.
    """
    repo = ProcessingRepository(session)
    event = repo.lock_event(event_id)
    if event is None or event.handled_at is not None:
        return Processed()
    provider = get_provider(event.source, settings)
    if provider is None:
        raise UnmappableEvent(f"provider {event.source!r} is not configured")
    try:
        payload = provider.parse(event.headers, event.raw_body)
    except MalformedPayload as exc:
        raise UnmappableEvent(str(exc)) from exc
    change = provider.connection_change(payload)
    user_id = _apply_change(repo, event.source, change, now) if change is not None else None
    user_id = provider.process(session, settings, payload, now) or user_id
    if isinstance(provider, FetchingProvider):
        ref = provider.user_ref(payload)
        try:
            groups = [(ref, _fetch(repo, settings, provider, event.source, payload, ref))]
        except ReconsentRequired as exc:
            # Whose link needs renewing, for the operators' view (the ref names a stored connection here).
            linked = repo.connection(event.source, ref.external_user_id) if ref.external_user_id else None
            event.user_id = linked.user_id if linked is not None else None
            event.attempts += 1
            event.error = f"ReconsentRequired: {exc.reason}"[:ERROR_MAX_LENGTH]
            log.warning("webhook_event_needs_reconsent", event_id=str(event.id), source=event.source)
            return Processed(failed=True)
    else:
        groups = provider.readings_by_user(payload)
    rows: list[dict[str, object]] = []
    rejected = 0
    users: set[uuid.UUID] = set() if user_id is None else {user_id}
    unknown = 0
    for ref, raw in groups:
        if not raw:
            continue
        readings, rejections = normalise(raw)
        _log_rejections(event, raw, rejections)
        rejected += len(rejections)
        # Only the stored connection names the user for these readings; for Terra, also the id our backend
        # gave it. An id in the body that matches no connection of ours writes nothing.
        owner = _resolve_user(repo, event.source, ref, link=False, now=now)
        if owner is None:
            unknown += 1
            continue
        users.add(owner)
        rows += [
            {
                "id": uuid.uuid4(),
                "user_id": owner,
                "source": reading.source,
                "kind": reading.kind.value,
                "value": reading.value,
                "unit": reading.unit.value,
                "observed_at": reading.observed_at,
                "webhook_event_id": event.id,
                "created_at": now,
            }
            for reading in readings
        ]
    if unknown and not users:
        raise UnmappableEvent("data for a user we do not have")
    if unknown:
        log.warning("webhook_readings_for_unknown_users", event_id=str(event.id), groups=unknown)
    # One row per natural key (the last wins): Postgres refuses an INSERT … ON CONFLICT touching a row twice.
    unique = {(row["user_id"], row["source"], row["kind"], row["observed_at"]): row for row in rows}
    written = repo.upsert_readings(list(unique.values()))
    if written:
        # Every user this event carried readings for gets their meters recomputed (coalesced per user).
        for reader in sorted(users, key=str):
            meters.request_recompute(session, settings, reader, now)
    event.user_id = next(iter(users)) if len(users) == 1 else None
    event.attempts += 1
    event.error = None
    event.handled_at = now
    return Processed(written=written, rejected=rejected)


def record_failure(session: Session, event_id: uuid.UUID, exc: BaseException) -> int | None:
    """Count the failed attempt on the event (in its own transaction); returns the attempts so far."""
    error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_LENGTH]
    return ProcessingRepository(session).record_failure(event_id, error)


def retry_delay(settings: Settings, attempts: int) -> float:
    """Exponential backoff with jitter: about base · 2^(attempts−1), capped, drawn from [½, 1] of it."""
    base = settings.webhook_retry_backoff.total_seconds()
    delay = min(settings.webhook_retry_backoff_max.total_seconds(), base * 2.0 ** max(attempts - 1, 0))
    jitter: float = random.uniform(0.5, 1.0)
    return delay * jitter


def requeue_stale(session: Session, settings: Settings, now: datetime) -> int:
    """Enqueue again (after commit) events stored but never attempted; returns how many.

    Safe to overdo: processing is idempotent under the event's row lock, so a copy of a message that was
    not lost after all finds the event handled and stops."""
    # A minute when nothing waits on the ingest queue: a killed worker's message (app.core.broker).
    cutoff = now - broker.lost_after(settings, TaskQueue.INGEST, STALE_AFTER)
    ids = ProcessingRepository(session).never_attempted_before(cutoff, REQUEUE_BATCH)
    for event_id in ids:
        jobs.enqueue(session, settings, jobs.Job(PROCESS_WEBHOOK_EVENT, (str(event_id),)))
    return len(ids)


# --- Operators' view of the inbox -------------------------------------------------------------------------


# A cursor is the keyset position itself, ``<received_at in µs since the epoch>_<event id hex>``: Postgres
# keeps microseconds, so the position round-trips exactly, and every string of this shape (``CURSOR_PATTERN``,
# which the route enforces) is a valid position, so a well-formed cursor never fails.
CURSOR_PATTERN = r"^[0-9]{1,17}_[0-9a-f]{32}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _encode_cursor(event: WebhookEvent) -> str:
    return f"{(event.received_at - _EPOCH) // _MICROSECOND}_{event.id.hex}"


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    micros, _, event_id = cursor.partition("_")
    try:
        return _EPOCH + int(micros) * _MICROSECOND, uuid.UUID(hex=event_id)
    except (ValueError, OverflowError) as exc:
        raise AppError(422, "Invalid cursor", code="invalid_cursor") from exc


def event_view(event: WebhookEvent, status: WebhookStatus | str | None = None) -> WebhookEventPublic:
    return WebhookEventPublic(
        id=event.id,
        source=event.source,
        external_id=event.external_id,
        user_id=event.user_id,
        received_at=event.received_at,
        handled_at=event.handled_at,
        attempts=event.attempts,
        error=event.error,
        status=WebhookStatus(status) if status is not None else status_of(event),
    )


async def list_events(
    session: AsyncSession,
    *,
    status: WebhookStatus | None,
    source: str | None,
    limit: int,
    cursor: str | None,
) -> WebhookEventPage:
    """A page of inbox events, newest first, on a keyset cursor: events arriving meanwhile never shift or
    repeat what later pages return (an offset would)."""
    before = _decode_cursor(cursor) if cursor else None
    # One row more than asked tells whether another page exists without a count query.
    rows = await OpsRepository(session).list_events(
        status=status, source=source, limit=limit + 1, before=before
    )
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1][0]) if len(rows) > limit else None
    return WebhookEventPage(
        items=[event_view(event, row_status) for event, row_status in page], next_cursor=next_cursor
    )


async def replay(session: AsyncSession, settings: Settings, event_id: uuid.UUID) -> WebhookEventPublic:
    """Enqueue processing of a stored event again (after commit). Processing is idempotent: a handled event
    is left as it is and writes nothing; a failed or pending one gets another attempt. Unknown id → 404."""
    event = await OpsRepository(session).get_event(event_id)
    if event is None:
        raise NotFoundError("Unknown webhook event")
    jobs.enqueue(session, settings, jobs.Job(PROCESS_WEBHOOK_EVENT, (str(event.id),)))
    log.info(
        "webhook_event_replayed", event_id=str(event.id), source=event.source, status=status_of(event).value
    )
    return event_view(event)
