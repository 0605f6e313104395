"""The ``rhythm`` console script, run as a real subprocess against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import create_engine, inspect

from app.core.config import Settings

RHYTHM = str(Path(sys.executable).with_name("rhythm"))


def run(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RHYTHM_ENV": "test", "RHYTHM_DATABASE_URL": database_url}
    return subprocess.run([RHYTHM, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run("--help", database_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "db", "users"):
        assert command in result.stdout


async def test_users_create_prints_a_working_token(
    settings: Settings, client: httpx.AsyncClient, clean_database: str
) -> None:
    result = run("users", "create", "--timezone", "Europe/Berlin", "--json", database_url=clean_database)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {created['token']}"})
    assert me.status_code == 200
    assert me.json() == {**me.json(), "user_id": created["user_id"], "timezone": "Europe/Berlin"}


def test_users_create_rejects_unknown_zone(clean_database: str) -> None:
    result = run("users", "create", "--timezone", "Atlantis/Capital", database_url=clean_database)
    assert result.returncode == 2
    assert "Atlantis/Capital" in result.stderr


def test_db_upgrade_and_downgrade_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgraded = run("db", "upgrade", database_url=url)
    assert upgraded.returncode == 0, upgraded.stderr
    engine = create_engine(url)
    assert "users" in inspect(engine).get_table_names()
    downgraded = run("db", "downgrade", "base", database_url=url)
    assert downgraded.returncode == 0, downgraded.stderr
    assert inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()
