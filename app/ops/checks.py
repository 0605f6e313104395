"""Readiness checks: is each dependency reachable right now?"""

from __future__ import annotations

import asyncio

from kombu.connection import Connection
from sqlalchemy import text

from app.core.db import Database


async def database_ready(db: Database) -> bool:
    async with db.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True


def _broker_ready_sync(broker_url: str, timeout: float) -> bool:
    with Connection(broker_url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1, timeout=timeout)
    return True


async def broker_ready(broker_url: str, limit_s: float) -> bool:
    # kombu is synchronous; a thread keeps the event loop free while it connects.
    return await asyncio.to_thread(_broker_ready_sync, broker_url, limit_s)
