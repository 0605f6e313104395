"""The test harness everyone uses: a real Postgres database, migrated by Alembic, and the real app over ASGI.

Fixtures (import nothing; pytest finds them):

- ``database_url`` (session): plain ``postgresql://`` URL of a database created for this pytest session
  (``rhythm_test_<random>`` on ``RHYTHM_TEST_DATABASE_URL``, default ``postgresql://postgres@127.0.0.1:5432/``),
  migrated with ``alembic upgrade head`` and dropped at the end. Tables exist only through migrations.
- ``settings`` (session): :class:`app.core.config.Settings` for that database (env=test, random admin
  token and secret key, broker ``RHYTHM_TEST_BROKER_URL`` or local Redis). Derive variants with
  ``settings.model_copy(update={...})``.
- ``clean_database`` (function): the same URL; every table is TRUNCATEd after the test. Isolation is by
  truncation, not by a rolled-back transaction, so the app's commit-per-request, concurrent requests and real
  worker processes all see committed data exactly as in production.
- ``app`` (function): ``create_app(settings)`` with its lifespan running; ``app.state.readiness_checks`` may
  be changed freely. ``client`` (function): ``httpx.AsyncClient`` on ``app`` (base ``http://rhythm.test``).
- ``admin_headers``: ``{"Authorization": "Bearer <admin token>"}``.
- ``create_user`` (factory): ``user_id, headers = await create_user(timezone="UTC")`` creates a user through
  ``POST /v1/users`` and returns its UUID and bearer headers.
- ``db_session`` (function): an ``AsyncSession`` on the app's engine for arranging or checking rows directly;
  call ``await db_session.commit()`` yourself when the app must see what you wrote.

A second app with other settings: ``tests.support.running_app(settings)`` + ``tests.support.app_client(app)``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import migrate
from app.core.config import Settings
from tests.support import (
    CreateUser,
    admin_headers_for,
    app_client,
    check_postgres,
    create_user_via_api,
    make_settings,
    running_app,
    temporary_postgres_database,
    truncate_all_tables,
)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    try:
        check_postgres()
    except psycopg.OperationalError as exc:
        pytest.exit(
            f"PostgreSQL is not reachable ({exc}); start it or set RHYTHM_TEST_DATABASE_URL", returncode=3
        )
    with temporary_postgres_database() as url:
        migrate.upgrade(url.replace("postgresql://", "postgresql+psycopg://", 1))
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def clean_database(database_url: str, settings: Settings) -> Iterator[str]:
    yield database_url
    truncate_all_tables(settings.sync_database_url)


@pytest.fixture
async def app(settings: Settings, clean_database: str) -> AsyncIterator[FastAPI]:
    async with running_app(settings) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(app) as http:
        yield http


@pytest.fixture
def admin_headers(settings: Settings) -> dict[str, str]:
    return admin_headers_for(settings)


@pytest.fixture
def create_user(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> CreateUser:
    async def _create(timezone: str = "UTC") -> tuple[uuid.UUID, dict[str, str]]:
        return await create_user_via_api(client, admin_headers, timezone)

    return _create


@pytest.fixture
async def db_session(app: FastAPI) -> AsyncIterator[AsyncSession]:
    async with app.state.db.sessionmaker() as session:
        yield session
