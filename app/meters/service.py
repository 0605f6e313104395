"""Meters: request a recompute after writing readings, run it in a worker, list the stored snapshots.

Producers (the inbox's processing, uploads, a calendar sync) call :func:`request_recompute` (sync session) or
:func:`request_recompute_async` in the transaction that writes a user's readings: the per-user row in
``meter_recomputes`` coalesces a burst into one queued task, sent after that transaction commits.

The task (``rhythm.ingest.recompute_meters``, user id only) first frees the queue slot (:func:`start`, its
own short transaction), then (:func:`recompute`) loads the user's last five weeks of readings plus the context
inputs of every registered :class:`~bridges.meters.ContextInputSource`, runs the engine in the user's time
zone and stores a ``bridge`` snapshot. Freeing the slot before reading means a reading committed meanwhile
queues the next recompute instead of being missed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.core import broker, jobs
from app.core.config import Settings
from app.core.errors import AppError
from app.core.tasks import RECOMPUTE_METERS, TaskQueue
from app.meters.repository import RecomputeRepository, SnapshotRepository
from app.meters.schemas import MeterSnapshotPage, MeterSnapshotPublic
from app.models import MeterSnapshot, SignalReading
from app.models.base import meter_row, meter_values_of
from app.models.signals import confidence_row, confidences_of
from app.recommend.slots import zone
from bridges.google.context import CalendarContextSource
from bridges.meters import MeterReport, Reading, ReadingRejected, SignalKind, Unit, estimate_meters
from bridges.meters.baselines import BASELINE_DAYS, TREND_DAYS
from bridges.meters.context import ContextInputSource, context_sources
from bridges.meters.engine import CLOCK_SKEW, DECAY, ENGINE_VERSION
from domain import METERS

log = structlog.get_logger(__name__)

SNAPSHOT_SOURCE = "bridge"
# The engine compares the latest day with the 28 before it, and a 7-day trend with the 28 before those.
READINGS_WINDOW = timedelta(days=BASELINE_DAYS + TREND_DAYS + 1)


def request_recompute(session: Session, settings: Settings, user_id: uuid.UUID, now: datetime) -> bool:
    """Ask for the user's meters to be recomputed once ``session`` commits; returns whether a task was queued
    (``False``: one is queued already and will see these readings)."""
    token = uuid.uuid4()
    if not RecomputeRepository(session).claim(user_id, now, token):
        return False
    jobs.enqueue(session, settings, jobs.Job(RECOMPUTE_METERS, (str(user_id),)))
    return True


async def request_recompute_async(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, now: datetime
) -> bool:
    """:func:`request_recompute` for the API's async sessions (uploads)."""
    token = uuid.uuid4()
    if not await SnapshotRepository(session).claim(user_id, now, token):
        return False
    jobs.enqueue(session, settings, jobs.Job(RECOMPUTE_METERS, (str(user_id),)))
    return True


# A recompute takes well under a second; a slot held this long without its task starting lost its message.
LOST_AFTER = timedelta(minutes=15)
# Meters decay with the age of their inputs: refresh a snapshot hourly while any input can still count.
REFRESH_EVERY = timedelta(hours=1)
REFRESH_BATCH = 500


def _input_horizon() -> timedelta:
    """How long a reading can still count: fresh, then four half-lives (DECAY), plus a day of slack."""
    return max(d.fresh_for + 4 * d.half_life for d in DECAY.values()) + timedelta(days=1)


def refresh(session: Session, settings: Settings, now: datetime) -> tuple[int, int]:
    """Beat's sweep: re-send recomputes whose message was lost, and recompute meters that have aged (decay
    toward neutral, then missing, even when no new reading arrives). Returns (re-sent, refreshed)."""
    repo = RecomputeRepository(session)
    # A minute when nothing waits on the ingest queue: a killed worker's message (app.core.broker).
    held = broker.lost_after(settings, TaskQueue.INGEST, LOST_AFTER)
    lost = repo.take_lost_slots(now - held, now, REFRESH_BATCH)
    for user_id in lost:
        jobs.enqueue(session, settings, jobs.Job(RECOMPUTE_METERS, (str(user_id),)))
    refreshed = 0
    for user_id in repo.stale(now - REFRESH_EVERY, now - _input_horizon(), REFRESH_BATCH):
        refreshed += request_recompute(session, settings, user_id, now)
    return len(lost), refreshed


def start(session: Session, user_id: uuid.UUID, now: datetime) -> bool:
    """Free the user's queue slot (commit this before :func:`recompute` reads); ``False`` for a user with no
    recompute row (deleted meanwhile): nothing to do."""
    return RecomputeRepository(session).start(user_id, now)


def _stored_reading(row: SignalReading) -> Reading | None:
    try:
        return Reading(SignalKind(row.kind), row.value, Unit(row.unit or ""), row.observed_at, row.source)
    except (ReadingRejected, ValueError):
        return None


def recompute(session: Session, user_id: uuid.UUID, now: datetime) -> MeterSnapshot | None:
    """Estimate the user's meters at ``now`` from their stored readings and context, and store the snapshot.

    ``None`` for an unknown user. A context source that fails is logged and left out (its meters go missing,
    they are never made up); its name is kept in the provenance.
    """
    repo = RecomputeRepository(session)
    timezone = repo.user_timezone(user_id)
    if timezone is None:
        return None
    rows = repo.readings(user_id, now - READINGS_WINDOW, now + CLOCK_SKEW)
    readings = [reading for row in rows if (reading := _stored_reading(row)) is not None]
    unreadable = len(rows) - len(readings)
    failed_sources: list[str] = []
    # The calendar and task inputs read this job's session; other registered sources bring their own.
    sources: tuple[ContextInputSource, ...] = (CalendarContextSource(session), *context_sources())
    for source in sources:
        try:
            readings.extend(source.context_readings(user_id, now))
        except Exception as exc:  # one source's outage must not stop the wearable meters
            failed_sources.append(type(source).__name__)
            log.warning("meters_context_failed", source=type(source).__name__, error=type(exc).__name__)
    report = estimate_meters(readings, now, zone(timezone))
    snapshot = repo.add_snapshot(_snapshot(user_id, report, unreadable, failed_sources))
    repo.finish(user_id, now)
    log.info(
        "meters_recomputed",
        user_id=str(user_id),
        readings=report.readings_considered,
        missing=[m.value for m in METERS if report[m].value is None],
    )
    return snapshot


def _snapshot(
    user_id: uuid.UUID, report: MeterReport, unreadable: int, failed_sources: list[str]
) -> MeterSnapshot:
    provenance = report.provenance()
    provenance["readings_unreadable"] = unreadable
    provenance["context_sources_failed"] = failed_sources
    return MeterSnapshot(
        user_id=user_id,
        taken_at=report.taken_at,
        source=SNAPSHOT_SOURCE,
        engine_version=ENGINE_VERSION,
        provenance=provenance,
        **meter_row([report[m].value for m in METERS]),
        **confidence_row([report[m].confidence for m in METERS]),
    )


# --- API: the caller's snapshots ---------------------------------------------------------------------------

# A cursor is the keyset position ``<taken_at in µs since the epoch>_<snapshot id hex>``.
CURSOR_PATTERN = r"^[0-9]{1,17}_[0-9a-f]{32}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _encode_cursor(snapshot: MeterSnapshot) -> str:
    return f"{(snapshot.taken_at - _EPOCH) // _MICROSECOND}_{snapshot.id.hex}"


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    micros, _, snapshot_id = cursor.partition("_")
    try:
        return _EPOCH + int(micros) * _MICROSECOND, uuid.UUID(hex=snapshot_id)
    except (ValueError, OverflowError) as exc:
        raise AppError(422, "Invalid cursor", code="invalid_cursor") from exc


def to_public(snapshot: MeterSnapshot) -> MeterSnapshotPublic:
    values = meter_values_of(snapshot)
    return MeterSnapshotPublic(
        id=snapshot.id,
        taken_at=snapshot.taken_at,
        source=snapshot.source,
        engine_version=snapshot.engine_version,
        meters=dict(zip(METERS, values, strict=True)),
        confidences=dict(zip(METERS, confidences_of(snapshot), strict=True)),
        missing=[m for m, v in zip(METERS, values, strict=True) if v is None],
        provenance=snapshot.provenance,
    )


async def list_snapshots(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> MeterSnapshotPage:
    """The caller's snapshots with ``start <= taken_at <= end``, newest first, a keyset page at a time."""
    if start is not None and end is not None and start > end:
        raise AppError(422, "`from` is after `to`", code="invalid_range")
    before = _decode_cursor(cursor) if cursor else None
    rows = await SnapshotRepository(session).page(
        user_id, start=start, end=end, before=before, limit=limit + 1
    )
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1]) if len(rows) > limit else None
    return MeterSnapshotPage(items=[to_public(row) for row in page], next_cursor=next_cursor)
