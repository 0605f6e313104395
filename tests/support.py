"""Helpers behind the fixtures in ``tests/conftest.py``; import them for a test's own app or database."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import psycopg
from fastapi import FastAPI
from psycopg import sql
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.main import create_app

# Server to create test databases on; its own database name is ignored (we only connect to it to CREATE/DROP).
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"

# The type of the ``create_user`` fixture: ``user_id, headers = await create_user(timezone="UTC")``.
CreateUser = Callable[..., Awaitable[tuple[uuid.UUID, dict[str, str]]]]


def server_url() -> str:
    return os.environ.get("RHYTHM_TEST_DATABASE_URL", DEFAULT_SERVER_URL)


def broker_url() -> str:
    return os.environ.get("RHYTHM_TEST_BROKER_URL", DEFAULT_BROKER_URL)


def _maintenance_dsn() -> str:
    url = make_url(server_url()).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


def check_postgres() -> None:
    """Raise ``psycopg.OperationalError`` if the test server does not answer."""
    with psycopg.connect(_maintenance_dsn(), connect_timeout=5) as conn:
        conn.execute("SELECT 1")


@contextmanager
def temporary_postgres_database(prefix: str = "rhythm_test") -> Iterator[str]:
    """Create a uniquely named, empty Postgres database and drop it afterwards; yields its plain URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(_maintenance_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(server_url()).set(drivername="postgresql", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_maintenance_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def truncate_all_tables(sync_url: str) -> None:
    """Empty every table except Alembic's bookkeeping; includes tables added by later migrations."""
    dsn = make_url(sync_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # A leaked open transaction would otherwise make TRUNCATE wait forever.
        conn.execute("SET lock_timeout = '10s'")
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            conn.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in tables)
                )
            )


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for tests: explicit secrets, env=test, the test broker; ``overrides`` win."""
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "broker_url": broker_url(),
        "admin_token": "test-admin-" + secrets.token_urlsafe(24),
        "secret_key": "test-secret-" + secrets.token_urlsafe(32),
        "log_level": "WARNING",
        # Most tests run no Celery worker; tests/workers/test_heartbeat.py turns this back on.
        "readiness_requires_worker": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """``create_app(settings)`` with its lifespan running (httpx's ASGITransport does not run lifespans)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def app_client(app: FastAPI, *, raise_app_exceptions: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://rhythm.test") as client:
        yield client


def admin_headers_for(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}


async def create_user_via_api(
    client: httpx.AsyncClient, admin_headers: dict[str, str], timezone: str = "UTC"
) -> tuple[uuid.UUID, dict[str, str]]:
    """Create a user through ``POST /v1/users``; returns its id and bearer headers."""
    response = await client.post("/v1/users", json={"timezone": timezone}, headers=admin_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    return uuid.UUID(body["user_id"]), {"Authorization": f"Bearer {body['token']}"}


REPO_ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def celery_process(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``celery -A workers.celery_app ARGS`` (a real worker or beat) with ``env``, logged to
    ``log_path``; stopped (TERM, then KILL after 20 s) on exit, the log tail printed so a failure shows it."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        print(log_path.name, log_path.read_text(errors="replace")[-4000:])


def wait_for_healthz(base_url: str, timeout: float) -> bool:
    """Poll ``{base_url}/healthz`` until it answers 200 (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False
