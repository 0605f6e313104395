"""``rhythm finetune --user ID`` runs this week's job of the user in the foreground."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import typer
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner, Result

from app.core.config import Settings, get_settings
from app.finetune.cli import finetune
from tests.finetune.conftest import log_history
from tests.support import CreateUser

_root = typer.Typer()
_root.command("finetune")(finetune)
_root.command("noop")(lambda: None)  # two commands, so Typer keeps `finetune` a sub-command


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RHYTHM_ENV", "test")
    monkeypatch.setenv("RHYTHM_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("RHYTHM_BROKER_URL", settings.broker_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _run(*args: str) -> Result:
    return CliRunner().invoke(_root, ["finetune", *args])


@pytest.mark.usefixtures("cli_env")
async def test_the_command_runs_the_weeks_job_once(create_user: CreateUser, db_session: AsyncSession) -> None:
    user_id, _ = await create_user()
    await log_history(db_session, user_id, days=5)
    first = _run("--user", str(user_id))
    assert first.exit_code == 0, first.output
    assert '"status": "skipped"' in first.output and "answered recommendations" in first.output
    second = _run("--user", str(user_id))
    assert second.exit_code == 0 and "is already skipped" in second.output
    assert _run("--user", str(uuid.uuid4())).exit_code == 1
    assert _run("--user", "nope").exit_code == 2
