"""Engines and the one transaction boundary of the service.

The API uses an async engine; Celery tasks, Alembic and the CLI use a sync engine on the same database.
A request's session commits once after the route returned successfully and rolls back on any error;
services never commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker


def _prepare_sqlite(url: str) -> dict[str, Any]:
    """Create the directory of a file-based SQLite database and return engine kwargs for it."""
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # SQLite allows one writer; waiting beats failing with "database is locked" when worker and API overlap.
    return {"connect_args": {"timeout": 30}}


def _enable_sqlite_foreign_keys(engine: Engine) -> None:
    """SQLite ignores ON DELETE CASCADE unless every connection turns foreign keys on."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()


def create_api_engine(url: str) -> AsyncEngine:
    """Async engine for the API process."""
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_async_engine(url, **_prepare_sqlite(url))
        _enable_sqlite_foreign_keys(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def create_sync_engine(url: str) -> Engine:
    """Sync engine for workers, Alembic and the CLI."""
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, **_prepare_sqlite(url))
        _enable_sqlite_foreign_keys(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """The API's engine and session factory; lives on ``app.state.db`` for the lifetime of the app."""

    def __init__(self, url: str) -> None:
        self.engine = create_api_engine(url)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    async def dispose(self) -> None:
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Request-scoped session: commit after the route succeeded, roll back if anything raised."""
    db: Database = request.app.state.db
    async with db.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": commit before the response is sent, so a 2xx always means the data is durable.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


@lru_cache
def sync_sessionmaker(url: str) -> sessionmaker[Session]:
    """One sync engine per database URL and process (Celery worker, CLI)."""
    return sessionmaker(create_sync_engine(url), expire_on_commit=False)


@contextmanager
def task_session(url: str) -> Iterator[Session]:
    """The transaction boundary of a task or CLI command: commit on success, roll back on error."""
    with sync_sessionmaker(url)() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        else:
            session.commit()
