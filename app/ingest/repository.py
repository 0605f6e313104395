"""All SQL of the uploads: the calling user's readings, upserted on their natural key."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import SignalReading


class ReadingRepository:
    def __init__(self, session: AsyncSession, user_id: uuid.UUID) -> None:
        self.session = session
        self.user_id = user_id

    async def upsert(self, rows: list[dict[str, Any]]) -> int:
        """Insert the caller's readings keyed by ``(user, source, kind, observed_at)``: a changed value
        overwrites, the same value writes nothing. Returns how many rows were written."""
        if not rows:
            return 0
        dialect = self.session.get_bind().dialect.name
        insert = (pg_insert if dialect == "postgresql" else sqlite_insert)(SignalReading).values(
            [{**row, "user_id": self.user_id} for row in rows]
        )
        statement = insert.on_conflict_do_update(
            index_elements=["user_id", "source", "kind", "observed_at"],
            set_={"value": insert.excluded.value, "unit": insert.excluded.unit},
            where=or_(
                SignalReading.value != insert.excluded.value, SignalReading.unit != insert.excluded.unit
            ),
        ).returning(SignalReading.id)
        return len((await self.session.execute(statement)).all())
