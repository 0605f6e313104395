"""Phone uploads → the caller's readings, validated by the signal vocabulary and upserted idempotently.

Typed readings (``/v1/ingest/signals``) come from our own app: one invalid reading refuses the whole batch
(422 naming each one), so the app can fix and resend without having to know what was kept. The Apple Health
export is a third party's format with whatever the phone recorded: its valid readings are stored, and each
rejected one is listed in the answer with its reason.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.errors import AppError
from app.core.timebounds import allowed_range, current_max_clock_skew
from app.ingest.repository import ReadingRepository
from app.ingest.schemas import AppleHealthExport, IngestPublic, RejectedReadingPublic, SignalBatchCreate
from app.meters.service import request_recompute_async
from app.models import User
from bridges.apple_health import export as apple
from bridges.meters.signals import RawReading, Reading, normalise

log = structlog.get_logger(__name__)

APP_SOURCE = "app"


def _too_many(settings: Settings, count: int) -> None:
    if count > settings.ingest_max_readings:
        raise AppError(
            422,
            f"An upload holds at most {settings.ingest_max_readings} readings",
            code="too_many_readings",
            details={"received": count, "limit": settings.ingest_max_readings},
        )


def _rows(readings: list[Reading], now: datetime) -> list[dict[str, Any]]:
    # One row per natural key (the last wins): a batch naming a key twice would otherwise make one
    # INSERT … ON CONFLICT touch the same row twice, which Postgres refuses.
    unique: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    for reading in readings:
        unique[(reading.source, reading.kind.value, reading.observed_at)] = {
            "id": uuid.uuid4(),
            "source": reading.source,
            "kind": reading.kind.value,
            "value": reading.value,
            "unit": reading.unit.value,
            "observed_at": reading.observed_at,
            "created_at": now,
        }
    # A fixed order, so two concurrent uploads of overlapping readings lock rows in the same order.
    return sorted(unique.values(), key=lambda row: (row["kind"], row["observed_at"]))


async def ingest_signals(
    session: AsyncSession, settings: Settings, user: User, data: SignalBatchCreate, now: datetime
) -> IngestPublic:
    _too_many(settings, len(data.readings))
    raw = [
        RawReading(item.kind, item.value, item.unit or item.kind.unit, item.observed_at, APP_SOURCE)
        for item in data.readings
    ]
    readings, rejections = normalise(raw)
    if rejections:
        details = [
            RejectedReadingPublic(
                index=r.index, kind=str(raw[r.index].kind), code=r.code, reason=r.reason
            ).model_dump()
            for r in rejections
        ]
        raise AppError(
            422, "Some readings cannot be right; nothing was stored", code="invalid_readings", details=details
        )
    written = await ReadingRepository(session, user.id).upsert(_rows(readings, now))
    if written:
        await request_recompute_async(session, settings, user.id, now)
    log.info("signals_ingested", user_id=str(user.id), received=len(raw), written=written)
    return IngestPublic(received=len(raw), written=written)


def _out_of_range(item: RawReading) -> str:
    days = round(current_max_clock_skew().total_seconds() / 86400, 2)
    # isoformat, not astimezone: the date may be one that cannot be converted to UTC at all.
    return f"date {item.observed_at.isoformat()} is not within {days} days of the server's clock"


async def ingest_apple_health(
    session: AsyncSession, settings: Settings, user: User, export: AppleHealthExport, now: datetime
) -> IngestPublic:
    items, ignored = apple.readings(export)
    _too_many(settings, len(items))
    rejected: list[RejectedReadingPublic] = []
    raw: list[RawReading] = []
    positions: list[int] = []
    # The export's dates are bounded like every timestamp the API accepts (issue 10): year 1 or 9999 with an
    # offset would overflow the conversion to UTC, and nothing legitimate is years away from now.
    earliest, latest = allowed_range(now)
    for index, item in enumerate(items):
        if isinstance(item, apple.BadDate):
            rejected.append(RejectedReadingPublic(index=index, kind="?", code="bad_date", reason=str(item)))
        elif not earliest <= item.observed_at <= latest:
            rejected.append(
                RejectedReadingPublic(
                    index=index, kind=str(item.kind), code="time_out_of_range", reason=_out_of_range(item)
                )
            )
        else:
            raw.append(item)
            positions.append(index)
    readings, rejections = normalise(raw)
    rejected += [
        RejectedReadingPublic(
            index=positions[r.index], kind=str(raw[r.index].kind), code=r.code, reason=r.reason
        )
        for r in rejections
    ]
    written = await ReadingRepository(session, user.id).upsert(_rows(readings, now))
    if written:
        await request_recompute_async(session, settings, user.id, now)
    log.info(
        "apple_health_ingested",
        user_id=str(user.id),
        received=len(items),
        written=written,
        rejected=len(rejected),
    )
    return IngestPublic(
        received=len(items),
        written=written,
        rejected=sorted(rejected, key=lambda item: item.index),
        ignored_metrics=ignored,
    )
