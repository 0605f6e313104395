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
from collections.abc import Callable
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from app.core import migrate
from app.core.config import Settings, get_settings

app = typer.Typer(
    name="rhythm", help="Rhythm: a model of the person a life assistant serves.", no_args_is_help=True
)
db_app = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True)
users_app = typer.Typer(help="User administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")

# (module, attribute, command name). Add one line to plug in another package's commands.
_EXTENSIONS: tuple[tuple[str, str, str], ...] = (
    ("sim.cli", "bench_app", "bench"),
    ("policy.cli", "pretrain", "pretrain"),
    ("bridges.actions.cli", "classify", "classify"),
)


def _attach_extensions() -> None:
    for module_name, attribute, name in _EXTENSIONS:
        if importlib.util.find_spec(module_name) is None:
            continue
        target: Any = getattr(importlib.import_module(module_name), attribute)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            command: Callable[..., Any] = target
            app.command(name)(command)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default RHYTHM_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default RHYTHM_PORT).")] = None,
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    from app.main import create_app

    settings = get_settings()
    # Our middleware writes one structured access line per request; uvicorn's own would duplicate it.
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        access_log=False,
        proxy_headers=True,
    )


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
    try:
        user_id, token = asyncio.run(_create_user(get_settings(), timezone))
    except ValidationError as exc:
        typer.echo(f"error: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(code=2) from exc
    if as_json:
        typer.echo(json.dumps({"user_id": user_id, "token": token}))
    else:
        typer.echo(f"user_id: {user_id}\ntoken:   {token}")


_attach_extensions()


def _attach_bench_api() -> None:
    """``rhythm bench api`` joins the ``bench`` group (which sim/ owns and app/ must not be imported by)."""
    from app.recommend.bench import api

    bench = next((group.typer_instance for group in app.registered_groups if group.name == "bench"), None)
    if bench is None:
        bench = typer.Typer(help="Benchmarks.", no_args_is_help=True)
        app.add_typer(bench, name="bench")
    bench.command("api")(api)


_attach_bench_api()


def main() -> None:
    app()
