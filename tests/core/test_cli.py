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


def test_users_list_and_delete(clean_database: str) -> None:
    created = json.loads(run("users", "create", "--json", database_url=clean_database).stdout)
    other = json.loads(
        run("users", "create", "--timezone", "Asia/Tokyo", "--json", database_url=clean_database).stdout
    )

    listed = run("users", "list", "--json", database_url=clean_database)
    assert listed.returncode == 0, listed.stderr
    users = {user["user_id"]: user for user in json.loads(listed.stdout)}
    assert set(users) == {created["user_id"], other["user_id"]}
    assert users[other["user_id"]]["timezone"] == "Asia/Tokyo"
    assert users[created["user_id"]]["active_tokens"] == 1
    assert set(users[created["user_id"]]) == {"user_id", "timezone", "created_at", "active_tokens"}
    # Never a token or its hash, in either output format.
    table = run("users", "list", database_url=clean_database)
    assert table.returncode == 0 and created["user_id"][:8] in table.stdout
    for output in (listed.stdout, table.stdout):
        assert created["token"] not in output and "hash" not in output

    deleted = run("users", "delete", created["user_id"], "--json", database_url=clean_database)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout) == {"user_id": created["user_id"], "deleted": True}
    remaining = json.loads(run("users", "list", "--json", database_url=clean_database).stdout)
    assert [user["user_id"] for user in remaining] == [other["user_id"]]

    again = run("users", "delete", created["user_id"], database_url=clean_database)
    assert again.returncode == 1
    assert f"no user {created['user_id']}" in again.stderr
    malformed = run("users", "delete", "not-a-uuid", database_url=clean_database)
    assert malformed.returncode == 2


def test_an_unmigrated_database_is_one_sentence(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    create_engine(f"sqlite:///{empty}").connect().close()  # an existing file without tables
    for args in (("users", "list"), ("users", "create"), ("serve", "--port", "1")):
        result = run(*args, database_url=f"sqlite:///{empty}")
        assert result.returncode == 1, (args, result.stderr)
        assert "run `rhythm db upgrade`" in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_outside_the_repository_the_data_dir_decides_and_nothing_is_created(tmp_path: Path) -> None:
    """No RHYTHM_DATABASE_URL: the SQLite file is looked for in RHYTHM_DATA_DIR (default ./var), never
    silently created."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RHYTHM_")}
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()

    def rhythm(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RHYTHM, *args], env={**env, **extra}, cwd=elsewhere, capture_output=True, text=True, timeout=120
        )

    listed = rhythm("users", "list")
    assert listed.returncode == 1
    assert "run `rhythm db upgrade`" in listed.stderr and "var/rhythm.db" in listed.stderr
    assert list(elsewhere.iterdir()) == []

    data = tmp_path / "data"
    assert rhythm("db", "upgrade", RHYTHM_DATA_DIR=str(data)).returncode == 0
    assert (data / "rhythm.db").exists()
    created = rhythm("users", "create", "--json", RHYTHM_DATA_DIR=str(data))
    assert created.returncode == 0, created.stderr
    listed = rhythm("users", "list", "--json", RHYTHM_DATA_DIR=str(data))
    assert [user["user_id"] for user in json.loads(listed.stdout)] == [json.loads(created.stdout)["user_id"]]
    assert list(elsewhere.iterdir()) == []
