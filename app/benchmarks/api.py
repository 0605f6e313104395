"""``rhythm bench api``: throughput and latency of ``POST /v1/recommend`` over real HTTP against Postgres.

Three servers, each a real uvicorn process on loopback (one worker), run one after the other on a freshly
migrated, seeded Postgres database, and are driven by httpx clients in this process:

* ``local`` — the service as deployed by default: the shipped policy model in-process.
* ``instant`` — the same service with a backend that answers at once: what the service itself costs (auth,
  validation, history read, prompt rendering, sampling, the logged insert and commit, middleware).
* ``bare`` — a bare FastAPI endpoint doing only the same history read: the floor any endpoint pays.

Every user has a full 30-day history (4 answered recommendations a day). Each of ``c`` concurrent clients
sends requests back to back (closed loop), so at 32 clients latency includes queueing in the single server
process. The figures that matter are the ratios within one run on one machine: ``instant / bare`` throughput,
and ``instant`` p99 at 32 clients.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import typer
from fastapi import FastAPI

from app.core.config import get_settings
from app.recommend.backends.base import PolicyDecision, PolicyInput
from domain import ACTIONS, METER_NAMES, N_ACTIONS, RESPONSES, Slot

MODES = ("local", "instant", "bare")
DEFAULT_CONCURRENCY = (1, 8, 32)
HISTORY_DAYS = 30
METERS = dict(zip(METER_NAMES, (0.62, 0.55, 0.41, 0.48, 0.37), strict=True))
# Targets from issue 5, checked on the instant backend (the service's own overhead).
TARGET_P99_MS_AT_32 = 15.0
TARGET_THROUGHPUT_RATIO = 0.4


class InstantBackend:
    """A policy that answers at once with the uniform distribution: isolates the service's own cost."""

    name = "instant"
    supports_adapters = False

    async def decide(self, inp: PolicyInput) -> PolicyDecision:
        return PolicyDecision(
            probabilities=np.full(N_ACTIONS, 1.0 / N_ACTIONS), backend=self.name, model="instant"
        )

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def instant_app() -> FastAPI:
    """uvicorn factory: the full service with :class:`InstantBackend` as its policy."""
    from app.main import create_app

    app = create_app()
    app.state.policy_backend = InstantBackend()
    return app


def database_app(database_url: str) -> FastAPI:
    """A bare FastAPI app holding one ``Database`` in ``app.state.db`` for its lifetime (the baselines the
    benchmarks compare the real service with)."""
    from app.core.db import Database

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(database_url)
        try:
            yield
        finally:
            await app.state.db.dispose()

    return FastAPI(lifespan=lifespan)


def bare_app() -> FastAPI:
    """uvicorn factory: one endpoint doing the recommend path's history read, nothing else."""
    from app.recommend.repository import HISTORY_ROW_CAP, RecommendationRepository
    from app.recommend.slots import local_slot, window_start, zone

    settings = get_settings()

    app = database_app(settings.async_database_url)

    @app.post("/bare/{user_id}")
    async def history(user_id: uuid.UUID) -> dict[str, int]:
        now = datetime.now(UTC)
        start = window_start(local_slot(now, zone("UTC")), settings.history_days, zone("UTC"))
        async with app.state.db.sessionmaker() as session:
            rows = await RecommendationRepository(session).history(user_id, start, now, HISTORY_ROW_CAP)
        return {"interactions": len(rows)}

    return app


# --- database -----------------------------------------------------------------------------------------------


def _server_dsn(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


@contextmanager
def temporary_database(server_url: str) -> Iterator[str]:
    """A new, migrated Postgres database (plain ``postgresql://`` URL), dropped afterwards."""
    import psycopg
    from psycopg import sql

    from app.core import migrate

    name = f"rhythm_bench_{secrets.token_hex(4)}"
    with psycopg.connect(_server_dsn(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _server_dsn(server_url, name)
    try:
        migrate.upgrade(url.replace("postgresql://", "postgresql+psycopg://", 1))
        yield url
    finally:
        with psycopg.connect(_server_dsn(server_url, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def _seed(url: str, n_users: int, seed: int) -> list[tuple[uuid.UUID, str]]:
    """``n_users`` users (UTC), each with 30 days x 4 answered recommendations; returns (id, token) pairs."""
    from sqlalchemy import insert

    from app.core.db import Database
    from app.models import Feedback, Recommendation
    from app.users import service
    from app.users.schemas import UserCreate

    rng = np.random.default_rng(seed)
    db = Database(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    users: list[tuple[uuid.UUID, str]] = []
    now = datetime.now(UTC)
    try:
        async with db.sessionmaker() as session:
            for _ in range(n_users):
                created = await service.create_user(session, UserCreate())
                users.append((created.user_id, created.token))
            for user_id, _token in users:
                recs, answers = [], []
                for days_ago in range(HISTORY_DAYS - 1, -1, -1):
                    for slot, hour in (
                        (Slot.MORNING, 8),
                        (Slot.AFTERNOON, 13),
                        (Slot.EVENING, 18),
                        (Slot.NIGHT, 23),
                    ):
                        at = (now - timedelta(days=days_ago)).replace(
                            hour=hour, minute=0, second=0, microsecond=0
                        )
                        if at >= now:
                            continue
                        rec_id = uuid.uuid4()
                        meters = rng.uniform(0.0, 1.0, 5).round(2)
                        recs.append(
                            {
                                "id": rec_id,
                                "user_id": user_id,
                                "at": at,
                                "created_at": at,
                                "day": at.weekday(),
                                "slot": int(slot),
                                **{name: float(v) for name, v in zip(METER_NAMES, meters, strict=True)},
                                "neutral_meters": False,
                                "action": ACTIONS[int(rng.integers(N_ACTIONS))],
                                "probabilities": [1.0 / N_ACTIONS] * N_ACTIONS,
                                "propensity": 1.0 / N_ACTIONS,
                                "temperature": 1.0,
                                "model": "seed",
                                "backend": "seed",
                            }
                        )
                        response = RESPONSES[int(rng.integers(len(RESPONSES)))]
                        answers.append(
                            {
                                "id": uuid.uuid4(),
                                "user_id": user_id,
                                "created_at": at,
                                "recommendation_id": rec_id,
                                "response": response,
                                "reward": response.reward,
                            }
                        )
                await session.execute(insert(Recommendation), recs)
                await session.execute(insert(Feedback), answers)
            await session.commit()
    finally:
        await db.dispose()
    return users


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux ``/proc``); ``None`` where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields 14 and 15 of stat(5) (utime, stime); index 11 and 12 after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- servers ------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_FACTORIES = {
    "local": "app.main:create_app",
    "instant": "app.benchmarks.api:instant_app",
    "bare": "app.benchmarks.api:bare_app",
}


@contextmanager
def uvicorn_server(
    mode: str,
    database_url: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    factory: str | None = None,
) -> Iterator[tuple[str, int]]:
    """A uvicorn process serving ``mode`` on a free loopback port; yields its base URL and PID, and stops it
    by that PID. ``extra_env`` overrides its environment (e.g. a known admin token); ``factory`` another
    app factory than the mode's (``rhythm bench webhooks`` has its own bare endpoint)."""
    port = free_port()
    env = {
        **os.environ,
        "RHYTHM_ENV": "development",
        "RHYTHM_DATABASE_URL": database_url,
        "RHYTHM_POLICY_BACKEND": "local",
        "RHYTHM_LOG_LEVEL": "WARNING",
        "RHYTHM_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "RHYTHM_SECRET_KEY": secrets.token_urlsafe(32),
        # The benchmark's clients send back to back on a few tokens: far past any limit meant for clients.
        "RHYTHM_RATE_LIMIT_ENABLED": "false",
        **(extra_env or {}),
    }
    command = [
        sys.executable, "-m", "uvicorn", "--factory", factory or _FACTORIES[mode],
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60.0
            probe = "/openapi.json" if mode == "bare" else "/healthz"
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{mode} server exited: {log_path.read_text(errors='replace')[-2000:]}"
                    )
                with suppress(httpx.HTTPError):
                    if httpx.get(base + probe, timeout=1.0).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{mode} server did not start within 60 s")
                time.sleep(0.2)
            yield base, process.pid
        finally:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# --- load ---------------------------------------------------------------------------------------------------


async def _drive(
    base: str, pid: int, mode: str, users: list[tuple[uuid.UUID, str]], concurrency: int, requests: int
) -> dict[str, Any]:
    """``concurrency`` closed-loop clients share ``requests`` requests; client ``i`` acts as user ``i``."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = 0
    remaining = requests

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as http:

        async def client(index: int) -> None:
            nonlocal remaining, errors
            user_id, token = users[index % len(users)]
            if mode == "bare":
                path, kwargs = f"/bare/{user_id}", {}
            else:
                path = "/v1/recommend"
                kwargs = {"json": {"meters": METERS}, "headers": {"Authorization": f"Bearer {token}"}}
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await http.post(path, **kwargs)  # type: ignore[arg-type]
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1

        # Warm-up: connections, caches, first-request paths.
        for index in range(concurrency):
            await http.post(
                f"/bare/{users[index % len(users)][0]}" if mode == "bare" else "/v1/recommend",
                json=None if mode == "bare" else {"meters": METERS},
                headers=None
                if mode == "bare"
                else {"Authorization": f"Bearer {users[index % len(users)][1]}"},
            )
        cpu_before = process_cpu_seconds(pid)
        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        wall = time.perf_counter() - started
        cpu_after = process_cpu_seconds(pid)

    ms = sorted(1000.0 * x for x in latencies)
    return {
        "requests": len(ms),
        "errors": errors,
        "throughput_rps": len(ms) / wall,
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        "mean_ms": statistics.fmean(ms),
        # The server process's own CPU per request: robust to other load on a shared machine.
        "server_cpu_ms_per_request": None
        if cpu_before is None or cpu_after is None
        else 1000.0 * (cpu_after - cpu_before) / len(ms),
    }


def run_benchmark(
    server_url: str,
    concurrency: tuple[int, ...],
    requests: int,
    modes: tuple[str, ...],
    seed: int,
    progress: Any = None,
) -> dict[str, Any]:
    """Seed a temporary database, then measure every mode at every concurrency; returns the report."""
    import tempfile

    results: dict[str, dict[str, Any]] = {mode: {} for mode in modes}
    with temporary_database(server_url) as url, tempfile.TemporaryDirectory() as logs:
        users = asyncio.run(_seed(url, max(concurrency), seed))
        task = progress.add_task("bench api", total=len(modes) * len(concurrency)) if progress else None
        for mode in modes:
            with uvicorn_server(mode, url, Path(logs) / f"{mode}.log") as (base, pid):
                for c in concurrency:
                    n = max(requests, 20 * c)
                    results[mode][str(c)] = asyncio.run(_drive(base, pid, mode, users, c, n))
                    if progress:
                        progress.advance(task)
    return {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {"concurrency": list(concurrency), "requests": requests, "history_days": HISTORY_DAYS},
        "results": results,
        "ratios": _ratios(results, concurrency),
    }


def _ratios(results: dict[str, dict[str, Any]], concurrency: tuple[int, ...]) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    for c in map(str, concurrency):
        row: dict[str, float] = {}
        if "instant" in results and "bare" in results:
            row["instant_over_bare_throughput"] = (
                results["instant"][c]["throughput_rps"] / results["bare"][c]["throughput_rps"]
            )
            cpu_instant = results["instant"][c]["server_cpu_ms_per_request"]
            cpu_bare = results["bare"][c]["server_cpu_ms_per_request"]
            if cpu_instant and cpu_bare:
                row["bare_over_instant_server_cpu"] = cpu_bare / cpu_instant
        if "local" in results and "instant" in results:
            row["local_over_instant_throughput"] = (
                results["local"][c]["throughput_rps"] / results["instant"][c]["throughput_rps"]
            )
            row["local_minus_instant_p50_ms"] = (
                results["local"][c]["p50_ms"] - results["instant"][c]["p50_ms"]
            )
        ratios[c] = row
    top = str(max(concurrency))
    if "instant" in results and "bare" in results:
        ratios["targets"] = {
            "instant_p99_ms_at_max_concurrency": results["instant"][top]["p99_ms"],
            "p99_target_ms": TARGET_P99_MS_AT_32,
            "p99_met": results["instant"][top]["p99_ms"] <= TARGET_P99_MS_AT_32,
            "throughput_ratio": ratios[top]["instant_over_bare_throughput"],
            "throughput_ratio_target": TARGET_THROUGHPUT_RATIO,
            "throughput_ratio_met": ratios[top]["instant_over_bare_throughput"] >= TARGET_THROUGHPUT_RATIO,
        }
    return ratios


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    levels = report["settings"]["concurrency"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, by_c in results.items():
        left.plot(levels, [by_c[str(c)]["throughput_rps"] for c in levels], marker="o", label=mode)
        right.plot(levels, [by_c[str(c)]["p99_ms"] for c in levels], marker="o", label=mode)
    right.axhline(
        TARGET_P99_MS_AT_32, color="grey", linestyle="--", linewidth=1, label="p99 target (instant)"
    )
    left.set(
        title="POST /v1/recommend throughput",
        xlabel="concurrent clients",
        ylabel="requests / s",
        xscale="log",
    )
    right.set(title="latency p99", xlabel="concurrent clients", ylabel="ms", xscale="log")
    for axis in (left, right):
        axis.set_xticks(levels, [str(c) for c in levels])
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def api(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
    requests: Annotated[
        int, typer.Option(help="Requests per mode and concurrency (at least 20 per client).")
    ] = 400,
    concurrency: Annotated[str, typer.Option(help="Comma-separated client counts.")] = "1,8,32",
    modes: Annotated[str, typer.Option(help="Comma-separated subset of local,instant,bare.")] = ",".join(
        MODES
    ),
    database: Annotated[
        str, typer.Option(help="Postgres server to create the temporary benchmark database on.")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    seed: Annotated[int, typer.Option(help="Seed of the generated histories.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG plot of throughput and p99 here.")] = None,
) -> None:
    """Throughput and latency of POST /v1/recommend (local model, instant backend) next to a bare endpoint."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    levels = tuple(int(x) for x in concurrency.split(","))
    chosen = tuple(m.strip() for m in modes.split(","))
    unknown = set(chosen) - set(MODES)
    if unknown:
        raise typer.BadParameter(f"unknown modes: {sorted(unknown)}")
    err = Console(stderr=True)
    with Progress(console=err, transient=True) as progress:
        report = run_benchmark(database, levels, requests, chosen, seed, progress)
    if plot is not None:
        _plot(report, plot)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title="POST /v1/recommend (one uvicorn worker, Postgres, 120-interaction histories)")
    for column in ("mode", "clients", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "errors"):
        table.add_column(column, justify="right")
    for mode, by_c in report["results"].items():
        for c, row in by_c.items():
            table.add_row(
                mode, c, f"{row['throughput_rps']:.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
                "-" if (cpu := row["server_cpu_ms_per_request"]) is None else f"{cpu:.2f}",
                str(row["errors"]),
            )  # fmt: skip
    out = Console()
    out.print(table)
    for c in map(str, levels):
        ratios = report["ratios"].get(c, {})
        text = ", ".join(f"{key} = {value:.2f}" for key, value in ratios.items())
        out.print(f"{c} clients: {text}")
    if targets := report["ratios"].get("targets"):
        out.print(
            f"targets: instant p99 at {max(levels)} clients "
            f"{targets['instant_p99_ms_at_max_concurrency']:.2f} ms "
            f"(≤ {TARGET_P99_MS_AT_32} ms: {'met' if targets['p99_met'] else 'NOT met'}); "
            f"instant/bare throughput {targets['throughput_ratio']:.2f} (≥ {TARGET_THROUGHPUT_RATIO}: "
            f"{'met' if targets['throughput_ratio_met'] else 'NOT met'})"
        )
