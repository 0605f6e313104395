"""All SQL of the wearable pulls (worker side, synchronous); every write is scoped to one user."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.models import DeviceConnection, SignalReading


class WearableRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def connection(self, connection_id: uuid.UUID) -> DeviceConnection | None:
        return self.session.get(DeviceConnection, connection_id)

    def active_connection_ids(self, providers: Sequence[str]) -> Sequence[uuid.UUID]:
        statement = (
            select(DeviceConnection.id)
            .where(
                DeviceConnection.provider.in_(providers),
                DeviceConnection.status == "active",
                DeviceConnection.revoked_at.is_(None),
            )
            .order_by(DeviceConnection.id)
        )
        return self.session.execute(statement).scalars().all()

    def upsert_readings(self, user_id: uuid.UUID, rows: list[dict[str, Any]]) -> int:
        """Readings of ``user_id`` keyed by ``(user, source, kind, observed_at)``: a changed value overwrites,
        the same value writes nothing (so a backfill over pushed data is a no-op). Returns rows written."""
        if not rows:
            return 0
        dialect = self.session.get_bind().dialect.name
        insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(SignalReading).values(
            [{**row, "user_id": user_id} for row in rows]
        )
        statement = insert.on_conflict_do_update(
            index_elements=["user_id", "source", "kind", "observed_at"],
            set_={"value": insert.excluded.value, "unit": insert.excluded.unit},
            where=or_(
                SignalReading.value != insert.excluded.value, SignalReading.unit != insert.excluded.unit
            ),
        ).returning(SignalReading.id)
        return len(self.session.execute(statement).all())
