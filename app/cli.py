"""The ``rhythm`` command: serve the API, migrate the database, administer users.

Other packages add command groups without editing this file's logic: a module listed in ``_EXTENSIONS`` that
exists is imported and its attribute attached (a ``typer.Typer`` becomes a sub-command group, a function a
single command). Keep heavy imports (torch, transformers) inside those command functions so that
``rhythm db upgrade`` and ``rhythm serve`` start fast.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import signal
import uuid
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer import _click as click  # the click Typer vendors (0.2x): its group classes take these types
from typer.core import TyperCommand, TyperGroup

from app.core import migrate

if TYPE_CHECKING:
    from app.core.config import Settings

T = TypeVar("T")

# (module, attribute, command name, one-line help for `rhythm --help`). Add one line to plug in another
# package's commands.
_EXTENSIONS: tuple[tuple[str, str, str, str], ...] = (
    ("sim.cli", "bench_app", "bench", "Benchmarks: personalization, local-model, api, console."),
    ("policy.cli", "pretrain", "pretrain", "Train the policy model from the simulator's expert."),
    ("bridges.actions.cli", "classify", "classify", "Classify calendar event titles into actions."),
    ("app.finetune.cli", "finetune", "finetune", "Run a user's weekly LoRA fine-tune in the foreground."),
    ("app.simulate.cli", "simulate", "simulate", "Simulated people living through a running stack."),
)
# Modules that add commands to an extension's group when imported (policy.cli adds `bench local-model`).
_GROUP_ADDONS: dict[str, tuple[str, ...]] = {"bench": ("policy.cli",)}


def _load_extension(module_name: str, attribute: str, name: str) -> click.Command:
    target: Any = getattr(importlib.import_module(module_name), attribute)
    for addon in _GROUP_ADDONS.get(name, ()):
        if importlib.util.find_spec(addon) is not None:
            importlib.import_module(addon)
    if name == "bench":
        _attach_bench_api(target)
    if isinstance(target, typer.Typer):
        command: click.Command = typer.main.get_group(target)
    else:
        single = typer.Typer()
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


def _attach_bench_api(bench: typer.Typer) -> None:
    """``rhythm bench api`` joins the ``bench`` group (which sim/ owns and app/ must not be imported by)."""
    from app.benchmarks.api import api

    if not any(info.name == "api" for info in bench.registered_commands):
        bench.command("api")(api)
    from app.benchmarks.console import console

    if not any(info.name == "console" for info in bench.registered_commands):
        bench.command("console")(console)
    from app.benchmarks.webhooks import webhooks

    if not any(info.name == "webhooks" for info in bench.registered_commands):
        bench.command("webhooks")(webhooks)
    from app.benchmarks.load import load

    if not any(info.name == "load" for info in bench.registered_commands):
        bench.command("load")(load)


class LazyGroup(TyperGroup):
    """The top-level group: extension commands are listed from ``_EXTENSIONS`` and built on first use."""

    _listing = False

    def _lazy(self) -> dict[str, tuple[str, str, str]]:
        return {
            name: (module, attribute, help_text)
            for module, attribute, name, help_text in _EXTENSIONS
            if importlib.util.find_spec(module) is not None
        }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        known = super().get_command(ctx, cmd_name)
        lazy = self._lazy().get(cmd_name)
        if known is not None or lazy is None:
            return known
        module, attribute, help_text = lazy
        if self._listing:  # the help page needs a name and a line, not the module
            return TyperCommand(cmd_name, help=help_text, short_help=help_text)
        loaded = _load_extension(module, attribute, cmd_name)
        self.add_command(loaded, cmd_name)
        return loaded

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


# Plain help pages (click's format): Typer's rich formatting imports rich's markdown, syntax and table
# modules for every help page, half of `rhythm --help`'s time (issue 10: under 1 s).
_PLAIN: dict[str, Any] = {"rich_markup_mode": None}

app = typer.Typer(
    name="rhythm",
    help="Rhythm: a model of the person a life assistant serves.",
    no_args_is_help=True,
    cls=LazyGroup,
    **_PLAIN,
)
db_app = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True, **_PLAIN)
users_app = typer.Typer(help="User administration.", no_args_is_help=True, **_PLAIN)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")


def get_settings() -> Settings:
    # Imported on use: pydantic-settings alone costs ~0.5 s, which `rhythm --help` need not pay.
    from app.core.config import get_settings as settings

    return settings()


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=code)


def _run_on_database(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's database work; a database that was never migrated is one sentence, not a traceback."""
    _refuse_absent_sqlite_file(get_settings())
    try:
        return asyncio.run(work())
    except Exception as exc:
        if migrate.is_missing_schema(exc):
            raise _fail(f"{migrate.MISSING_SCHEMA} ({_where(get_settings())})") from exc
        raise


def _refuse_absent_sqlite_file(settings: Settings) -> None:
    """Connecting would create an empty SQLite file (in ./var when run outside the repository): say where the
    database was looked for instead."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = make_url(settings.sync_database_url)
    file = url.database if url.get_backend_name() == "sqlite" else None
    if file and file != ":memory:" and not Path(file).exists():
        raise _fail(
            f"{migrate.MISSING_SCHEMA} (no SQLite database at {file}; "
            "set RHYTHM_DATA_DIR or RHYTHM_DATABASE_URL to use another)"
        )


def _where(settings: Settings) -> str:
    """The database a command used, without credentials."""
    from sqlalchemy.engine import make_url

    return f"database {make_url(settings.sync_database_url).render_as_string(hide_password=True)}"


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default RHYTHM_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default RHYTHM_PORT).")] = None,
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    from app.main import create_app

    settings = get_settings()
    _require_schema(settings)
    # Our middleware writes one structured access line per request; uvicorn's own would duplicate it.
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        access_log=False,
        proxy_headers=True,
    )


def _require_schema(settings: Settings) -> None:
    """Refuse to serve a database that was never migrated, in one sentence (an unreachable one is left to
    ``/readyz``: the service starts and reports it)."""
    from sqlalchemy import inspect

    from app.core.db import create_sync_engine

    _refuse_absent_sqlite_file(settings)
    engine = create_sync_engine(settings.sync_database_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
    except Exception:
        return
    finally:
        engine.dispose()
    if "users" not in tables:
        raise _fail(f"{migrate.MISSING_SCHEMA} ({_where(settings)})")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    migrate.upgrade(get_settings().sync_database_url, revision)
    typer.echo(f"database upgraded to {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")]) -> None:
    """Revert migrations down to REVISION."""
    migrate.downgrade(get_settings().sync_database_url, revision)
    typer.echo(f"database downgraded to {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the revision the database is at."""
    migrate.current(get_settings().sync_database_url)


async def _create_user(settings: Settings, timezone: str) -> tuple[str, str]:
    from app.core.db import Database
    from app.users import service
    from app.users.schemas import UserCreate

    data = UserCreate(timezone=timezone)
    db = Database(settings.async_database_url)
    try:
        # The command is the transaction boundary, like a request: commit once, after the service succeeded.
        async with db.sessionmaker() as session:
            created = await service.create_user(session, data)
            await session.commit()
    finally:
        await db.dispose()
    return str(created.user_id), created.token


@users_app.command("create")
def users_create(
    timezone: Annotated[str, typer.Option(help="IANA time zone of the user, e.g. Europe/Berlin.")] = "UTC",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a user and print its ID and bearer token (shown only this once)."""
    from pydantic import ValidationError

    try:
        user_id, token = _run_on_database(lambda: _create_user(get_settings(), timezone))
    except ValidationError as exc:
        raise _fail(exc.errors()[0]["msg"], code=2) from exc
    if as_json:
        typer.echo(json.dumps({"user_id": user_id, "token": token}))
    else:
        typer.echo(f"user_id: {user_id}\ntoken:   {token}")


async def _list_users(settings: Settings) -> list[dict[str, Any]]:
    from app.core.db import Database
    from app.users import service

    db = Database(settings.async_database_url)
    try:
        async with db.sessionmaker() as session:
            listed = await service.list_users(session)
    finally:
        await db.dispose()
    return [user.model_dump(mode="json") for user in listed]


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """List users, oldest first: ID, time zone, creation time and number of active tokens (never a hash)."""
    users = _run_on_database(lambda: _list_users(get_settings()))
    if as_json:
        typer.echo(json.dumps(users))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("user_id", "timezone", "created_at", "active_tokens")
    for user in users:
        table.add_row(user["user_id"], user["timezone"], user["created_at"], str(user["active_tokens"]))
    Console().print(table)


async def _delete_user(settings: Settings, user_id: uuid.UUID) -> bool:
    from app.core.auth import Principal
    from app.core.db import Database
    from app.core.errors import NotFoundError
    from app.users import service

    db = Database(settings.async_database_url)
    try:
        async with db.sessionmaker() as session:
            try:
                await service.delete_user(session, settings, Principal(is_admin=True), user_id)
            except NotFoundError:
                return False
            await session.commit()
    finally:
        await db.dispose()
    return True


@users_app.command("delete")
def users_delete(
    user_id: Annotated[uuid.UUID, typer.Argument(help="ID of the user to delete.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Delete a user and every row they own (as the admin's DELETE /v1/users/{id} does)."""
    deleted = _run_on_database(lambda: _delete_user(get_settings(), user_id))
    if not deleted:
        if as_json:
            typer.echo(json.dumps({"user_id": str(user_id), "deleted": False}))
        raise _fail(f"no user {user_id}")
    if as_json:
        typer.echo(json.dumps({"user_id": str(user_id), "deleted": True}))
    else:
        typer.echo(f"deleted user {user_id}")


def main() -> None:
    # A supervisor's SIGTERM (or `kill`) unwinds like Ctrl-C: commands that start servers and workers
    # (`simulate --spawn`, `bench load`, `bench api`, `bench webhooks`, vLLM) stop them in their `finally`
    # blocks instead of leaving them running against the run's database. `serve` installs uvicorn's own.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    app()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
