"""``rhythm bench webhooks``: the webhook accept path against a bare insert, then real workers draining.

Phase 1, accept (same run, same uvicorn settings: one worker, no access log, rate limits off, both on one
freshly migrated Postgres database and the Redis broker):

* ``provider`` — ``POST /v1/webhooks/terra`` of the real service: signature check (HMAC, 300 s tolerance),
  payload parse, insert-once of the raw bytes and headers into ``webhook_events``, the processing task
  published to Redis after the commit.
* ``bare`` — a bare FastAPI endpoint that inserts the same row (raw bytes, headers) into the same table and
  commits, nothing else: the floor any endpoint pays.

``c`` closed-loop clients per server send back to back (the same for both); each delivery is signed just
before it is sent and carries its own trace id, so none is a duplicate. Figures: throughput, p50 and p99, and
the throughput ratio provider / bare (goal >= 0.6, issue 12).

Phase 2, drain: the provider server keeps accepting until ``deliveries`` (default 10,000) are stored and
queued, with no worker running; then ``workers`` real Celery worker processes (``--pool solo``, queue
``ingest``) start and process them all. Events per second come from the ``handled_at`` stamps (first to
last), per worker = total / workers. The books are checked by counting rows: every delivery handled, each
exactly once (``attempts == 1``), and exactly the readings the deliveries carry, none twice.

``--provider whoop`` / ``oura``: a notify-only provider (the webhook names a record, the worker fetches it
with the user's token). The accept phase checks that provider's signature instead of Terra's. Before it, every
user gets a stored connection with encrypted tokens, and the source starts a local provider API
(:mod:`app.benchmarks.provider_api`, a real HTTP server on loopback in a thread of this process) that answers
the documented REST documents of a record per delivery; the workers' API base URL points at it, so the drain
includes the fetch round trip (WHOOP: 3 GETs per ``recovery.updated``, Oura: 1 GET per ``sleep``). The books
add the server's side: every delivery's records fetched exactly once, no other GET, no 401. The Terra run
(data in the push) is the drain without a fetch.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Protocol

import httpx
import typer
from fastapi import FastAPI, Request, Response

from app.benchmarks.api import database_app, process_cpu_seconds, temporary_database, uvicorn_server
from app.benchmarks.provider_api import NotifyProviderApi, OuraApi, WhoopApi
from app.core.config import get_settings

TARGET_THROUGHPUT_RATIO = 0.6
REPO_ROOT = Path(__file__).resolve().parents[2]


def bare_app() -> FastAPI:
    """uvicorn factory: one endpoint that stores the raw delivery in ``webhook_events`` and commits."""
    from app.models import WebhookEvent

    settings = get_settings()

    app = database_app(settings.async_database_url)

    @app.post("/bare")
    async def insert(request: Request) -> Response:
        body = await request.body()
        async with app.state.db.sessionmaker() as session:
            session.add(
                WebhookEvent(
                    source="bare",
                    external_id=uuid.uuid4().hex,
                    raw_body=body,
                    headers=dict(request.headers),
                    received_at=datetime.now(UTC),
                )
            )
            await session.commit()
        return Response(status_code=202)

    return app


# --- what is delivered --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    body: bytes
    headers: dict[str, str]


class DeliverySource(Protocol):
    """One provider's deliveries: what the server needs to accept them, and how many readings each carries."""

    name: str
    path: str
    readings_per_delivery: int

    def server_env(self) -> dict[str, str]: ...

    def worker_env(self) -> dict[str, str]: ...

    def serving(self) -> Any:
        """A context manager around the phases (a local provider API for notify-only providers)."""
        ...

    def link(self, sync_url: str, user_ids: list[uuid.UUID]) -> None:
        """Store what the workers need to map a delivery to its user (a notify-only provider's links)."""
        ...

    def delivery(self, index: int, user_ids: list[uuid.UUID], now: datetime) -> Delivery: ...

    def fetch_books(self, deliveries: int) -> dict[str, Any] | None:
        """What the local provider API served for deliveries ``0 … deliveries-1``; ``None`` without one."""
        ...


class TerraDeliveries:
    """Terra ``daily`` events (the data in the push, no fetch): four readings each, one day per delivery."""

    name = "terra"
    path = "/v1/webhooks/terra"
    readings_per_delivery = 4  # resting HR, RMSSD, stress, steps

    def __init__(self) -> None:
        self.secret = "bench-" + secrets.token_hex(16)

    def server_env(self) -> dict[str, str]:
        return {"RHYTHM_TERRA_WEBHOOK_SECRET": self.secret}

    def worker_env(self) -> dict[str, str]:
        return self.server_env()

    @contextmanager
    def serving(self) -> Iterator[None]:
        yield

    def link(self, sync_url: str, user_ids: list[uuid.UUID]) -> None:
        pass  # the signed delivery's reference_id creates the connection on first sight

    def fetch_books(self, deliveries: int) -> dict[str, Any] | None:
        return None

    def delivery(self, index: int, user_ids: list[uuid.UUID], now: datetime) -> Delivery:
        from bridges.terra.provider import sign

        user_id = user_ids[index % len(user_ids)]
        # Every delivery of a user is another day, so its readings are new rows (none overwrites another).
        day = (now - timedelta(days=1 + index // len(user_ids))).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        document = {
            "type": "daily",
            "user": {
                "user_id": f"terra-{user_id.hex[:12]}",
                "provider": "OURA",
                "reference_id": str(user_id),
                "scopes": None,
                "last_webhook_update": None,
            },
            "version": "2022-03-16",
            "data": [
                {
                    "metadata": {
                        "start_time": day.isoformat(),
                        "end_time": (day + timedelta(days=1)).isoformat(),
                        "upload_type": 1,
                        "timestamp_localization": 0,
                    },
                    "heart_rate_data": {
                        "summary": {"resting_hr_bpm": 55.0 + index % 7, "avg_hrv_rmssd": 40.0 + index % 13},
                        "detailed": {"hr_samples": [], "hrv_samples_rmssd": []},
                    },
                    "stress_data": {"avg_stress_level": 20 + index % 50, "samples": []},
                    "distance_data": {"steps": 4000 + index % 9000},
                }
            ],
        }
        body = json.dumps(document, indent=1).encode()
        timestamp = int(time.time())
        return Delivery(
            body,
            {
                "content-type": "application/json",
                "terra-signature": f"t={timestamp},v1={sign(self.secret, timestamp, body)}",
                "x-terra-trace-id": uuid.uuid4().hex,
            },
        )


class NotifyOnlyDeliveries:
    """A notify-only provider (the webhook names a record, the worker fetches it with the user's token)
    against the generated API of :mod:`app.benchmarks.provider_api`: connections with encrypted tokens are
    stored for every user, and the workers' API base URL (and token URL, so a refresh could not leave the
    machine) point at the local server."""

    name: str
    path: str
    readings_per_delivery: int
    setting: str  # the settings prefix, e.g. ``WHOOP``

    def __init__(self, api: NotifyProviderApi) -> None:
        self.api = api
        self.secret = "bench-" + secrets.token_hex(16)
        # The workers decrypt the tokens this process encrypts: one key for both, the run's own.
        self.secret_key = secrets.token_urlsafe(32)

    def server_env(self) -> dict[str, str]:
        return {f"RHYTHM_{self.setting}_CLIENT_SECRET": self.secret}

    def worker_env(self) -> dict[str, str]:
        assert self.api.api is not None, "worker_env is read inside serving()"
        url = self.api.api.url
        return {
            **self.server_env(),
            "RHYTHM_SECRET_KEY": self.secret_key,
            f"RHYTHM_{self.setting}_API_BASE_URL": url,
            f"RHYTHM_{self.setting}_TOKEN_URL": f"{url}/oauth/token",
        }

    @contextmanager
    def serving(self) -> Iterator[None]:
        with self.api.serving():
            yield

    def link(self, sync_url: str, user_ids: list[uuid.UUID]) -> None:
        from app.core.db import task_session
        from app.models import DeviceConnection
        from bridges.connections import TokenSet, cipher_for, write_tokens

        cipher = cipher_for(self.secret_key)
        # Valid for the whole run: the drain measures fetches, not token refreshes.
        expires = datetime.now(UTC) + timedelta(days=1)
        tokens = [f"bench-access-{k}-{secrets.token_hex(8)}" for k in range(len(user_ids))]
        with task_session(sync_url) as session:
            for k, user_id in enumerate(user_ids):
                connection = DeviceConnection(
                    user_id=user_id, provider=self.name, external_user_id=self.api.external_user_id(k)
                )
                write_tokens(connection, TokenSet(tokens[k], f"bench-refresh-{k}", expires, "read"), cipher)
                session.add(connection)
        self.api.tokens = tokens

    def fetch_books(self, deliveries: int) -> dict[str, Any] | None:
        return self.api.fetch_books(deliveries)


class WhoopDeliveries(NotifyOnlyDeliveries):
    """WHOOP ``recovery.updated`` notifications (base64 HMAC over the millisecond timestamp ‖ body); the
    worker fetches the sleep, its cycle's recovery and the cycle: 3 GETs, four readings per delivery."""

    name = "whoop"
    path = "/v1/webhooks/whoop"
    readings_per_delivery = 4  # recovery score, resting HR, RMSSD, strain
    setting = "WHOOP"

    def __init__(self) -> None:
        self.whoop = WhoopApi(secrets.randbits(64), datetime.now(UTC))
        super().__init__(self.whoop)

    def delivery(self, index: int, user_ids: list[uuid.UUID], now: datetime) -> Delivery:
        from bridges.whoop.provider import sign

        document = {
            "user_id": int(self.api.external_user_id(index % len(user_ids))),
            "id": self.whoop.sleep_id(index),
            "type": "recovery.updated",
            "trace_id": str(uuid.uuid4()),
        }
        body = json.dumps(document, indent=2).encode()
        timestamp_ms = int(time.time() * 1000)
        return Delivery(
            body,
            {
                "content-type": "application/json",
                "x-whoop-signature": sign(self.secret, timestamp_ms, body),
                "x-whoop-signature-timestamp": str(timestamp_ms),
            },
        )


class OuraDeliveries(NotifyOnlyDeliveries):
    """Oura ``sleep`` update notifications (upper-case hex HMAC over the timestamp ‖ body); the worker fetches
    the sleep period: one GET, eight readings per delivery."""

    name = "oura"
    path = "/v1/webhooks/oura"
    readings_per_delivery = 8  # RMSSD, lowest HR, duration, deep, REM, light, awake, deep share
    setting = "OURA"

    def __init__(self) -> None:
        self.oura = OuraApi(secrets.randbits(64), datetime.now(UTC))
        super().__init__(self.oura)

    def delivery(self, index: int, user_ids: list[uuid.UUID], now: datetime) -> Delivery:
        from bridges.oura.provider import sign

        document = {
            "event_type": "update",
            "data_type": "sleep",
            "object_id": self.oura.sleep_id(index),
            "event_time": now.isoformat(timespec="milliseconds"),
            "user_id": self.api.external_user_id(index % len(user_ids)),
        }
        body = json.dumps(document, indent=2).encode()
        timestamp = str(int(time.time()))
        return Delivery(
            body,
            {
                "content-type": "application/json",
                "x-oura-signature": sign(self.secret, timestamp, body),
                "x-oura-timestamp": timestamp,
            },
        )


SOURCES: dict[str, Callable[[], DeliverySource]] = {
    "terra": TerraDeliveries,
    "whoop": WhoopDeliveries,
    "oura": OuraDeliveries,
}


# --- phase 1: accept ----------------------------------------------------------------------------------------


async def _drive(
    base: str,
    pid: int,
    path: str,
    make: Any,
    *,
    concurrency: int,
    first: int,
    count: int,
    warmup: int = 0,
    progress: Any = None,
    task: Any = None,
) -> dict[str, Any]:
    """Send deliveries ``make(first)`` … in order: ``warmup`` one by one (untimed: connections, first-request
    paths), then ``count`` shared by ``concurrency`` closed-loop clients, timed. Every answer must be 202."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = 0
    timed_from = first + warmup
    counter = itertools.count(timed_from)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as http:
        for index in range(first, timed_from):
            delivery: Delivery = make(index)
            if (await http.post(path, content=delivery.body, headers=delivery.headers)).status_code != 202:
                errors += 1

        async def client() -> None:
            nonlocal errors
            while (index := next(counter)) < timed_from + count:
                delivery: Delivery = make(index)
                started = time.perf_counter()
                response = await http.post(path, content=delivery.body, headers=delivery.headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 202:
                    errors += 1
                if progress is not None:
                    progress.advance(task)

        cpu_before = process_cpu_seconds(pid)
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        cpu_after = process_cpu_seconds(pid)

    ms = sorted(1000.0 * x for x in latencies)
    return {
        "requests": len(ms),
        "errors": errors,
        "throughput_rps": len(ms) / wall,
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
        "server_cpu_ms_per_request": None
        if cpu_before is None or cpu_after is None
        else 1000.0 * (cpu_after - cpu_before) / len(ms),
    }


async def _create_users(url: str, n: int) -> list[uuid.UUID]:
    from app.core.db import Database
    from app.users import service
    from app.users.schemas import UserCreate

    db = Database(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with db.sessionmaker() as session:
            users = [(await service.create_user(session, UserCreate())).user_id for _ in range(n)]
            await session.commit()
    finally:
        await db.dispose()
    return users


# --- phase 2: drain -----------------------------------------------------------------------------------------


@contextmanager
def celery_workers(count: int, env: dict[str, str], logs: Path) -> Iterator[list[int]]:
    """``count`` real ``celery worker`` processes on ``ingest`` (solo pool); stopped by their PIDs."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            command = [
                sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool", "solo",
                "-Q", "ingest", "-n", f"bench-{i}-{secrets.token_hex(3)}@%h", "--without-mingle",
                "--without-gossip", "--without-heartbeat", "-l", "WARNING",
            ]  # fmt: skip
            with (logs / f"worker-{i}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        command,
                        cwd=REPO_ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield [p.pid for p in processes]
    finally:
        for process in processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _books(sync_url: str, source: str) -> dict[str, Any]:
    """Counts straight from the tables: how many deliveries are handled, how often, and what they wrote."""
    from sqlalchemy import func, select

    from app.core.db import task_session
    from app.models import MeterSnapshot, SignalReading, WebhookEvent

    with task_session(sync_url) as session:
        events = WebhookEvent.source == source
        stored = session.scalar(select(func.count()).where(events)) or 0
        handled = (
            session.scalar(select(func.count()).where(events, WebhookEvent.handled_at.is_not(None))) or 0
        )
        once = session.scalar(select(func.count()).where(events, WebhookEvent.attempts == 1)) or 0
        failed = session.scalar(select(func.count()).where(events, WebhookEvent.error.is_not(None))) or 0
        first, last = session.execute(
            select(func.min(WebhookEvent.handled_at), func.max(WebhookEvent.handled_at)).where(events)
        ).one()
        readings = session.scalar(select(func.count()).select_from(SignalReading)) or 0
        distinct = (
            session.scalar(
                select(func.count()).select_from(
                    select(
                        SignalReading.user_id,
                        SignalReading.source,
                        SignalReading.kind,
                        SignalReading.observed_at,
                    )
                    .distinct()
                    .subquery()
                )
            )
            or 0
        )
        snapshots = session.scalar(select(func.count()).select_from(MeterSnapshot)) or 0
    return {
        "stored": stored,
        "handled": handled,
        "handled_exactly_once": once,
        "failed": failed,
        "first_handled_at": first,
        "last_handled_at": last,
        "readings": readings,
        "distinct_readings": distinct,
        "snapshots": snapshots,
    }


# --- the run ------------------------------------------------------------------------------------------------


def run_benchmark(
    server_url: str,
    broker_url: str,
    *,
    provider: str = "terra",
    requests: int = 2000,
    deliveries: int = 10_000,
    concurrency: int = 16,
    workers: int = 1,
    users: int = 50,
    progress: Any = None,
) -> dict[str, Any]:
    """Run both phases on a temporary database and a private broker key prefix; returns the report."""
    import redis

    source = SOURCES[provider]()
    prefix = f"rhythm-bench-{secrets.token_hex(4)}:"
    env = {
        "RHYTHM_BROKER_URL": broker_url,
        "RHYTHM_BROKER_KEY_PREFIX": prefix,
        "RHYTHM_READINESS_REQUIRES_WORKER": "false",
        # The webhook path never asks the policy: spare both servers loading the model.
        "RHYTHM_POLICY_BACKEND": "fallback",
        **source.server_env(),
    }
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "loadavg_before": os.getloadavg(),
        },
        "settings": {
            "provider": provider,
            "path": source.path,
            "requests": requests,
            "deliveries": deliveries,
            "concurrency": concurrency,
            "workers": workers,
            "users": users,
        },
    }
    broker = redis.Redis.from_url(broker_url)
    try:
        with (
            temporary_database(server_url) as url,
            tempfile.TemporaryDirectory() as tmp,
            source.serving(),
        ):
            logs = Path(tmp)
            sync_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            user_ids = asyncio.run(_create_users(url, users))
            source.link(sync_url, user_ids)
            now = datetime.now(UTC)
            accept: dict[str, Any] = {}
            task = progress.add_task("accept", total=2 * requests) if progress else None
            # Bare first, provider second: the provider's deliveries are the ones the workers drain later.
            warmup = 2 * concurrency

            def make(index: int) -> Delivery:
                return source.delivery(index, user_ids, now)

            bare = "app.benchmarks.webhooks:bare_app"
            with uvicorn_server("bare", url, logs / "bare.log", env, factory=bare) as (base, pid):
                accept["bare"] = asyncio.run(
                    _drive(
                        base, pid, "/bare", make, concurrency=concurrency, first=0, count=requests,
                        warmup=warmup, progress=progress, task=task,
                    )
                )  # fmt: skip
            with uvicorn_server("local", url, logs / "provider.log", env) as (base, pid):
                accept["provider"] = asyncio.run(
                    _drive(
                        base, pid, source.path, make, concurrency=concurrency, first=0, count=requests,
                        warmup=warmup, progress=progress, task=task,
                    )
                )  # fmt: skip
                # Top up to `deliveries` accepted and queued (untimed), still with no worker running.
                sent = warmup + requests
                rest = max(0, deliveries - sent)
                if rest:
                    fill = progress.add_task("queue deliveries", total=rest) if progress else None
                    asyncio.run(
                        _drive(
                            base, pid, source.path, make, concurrency=concurrency, first=sent, count=rest,
                            progress=progress, task=fill,
                        )
                    )  # fmt: skip
            report["accept"] = accept
            report["ratio"] = {
                "provider_over_bare_throughput": accept["provider"]["throughput_rps"]
                / accept["bare"]["throughput_rps"],
                "target": TARGET_THROUGHPUT_RATIO,
            }
            report["ratio"]["met"] = (
                report["ratio"]["provider_over_bare_throughput"] >= TARGET_THROUGHPUT_RATIO
            )

            before = _books(sync_url, source.name)
            worker_env = {
                **os.environ,
                "RHYTHM_ENV": "development",
                "RHYTHM_DATABASE_URL": url,
                "RHYTHM_LOG_LEVEL": "WARNING",
                **env,
                **source.worker_env(),
            }
            drain = progress.add_task("drain", total=before["stored"]) if progress else None
            started = time.perf_counter()
            deadline = started + max(120.0, before["stored"] / 10.0)
            with celery_workers(workers, worker_env, logs):
                while True:
                    books = _books(sync_url, source.name)
                    if progress is not None:
                        progress.update(drain, completed=books["handled"])
                    if (
                        books["handled"] + books["failed"] >= books["stored"]
                        or time.perf_counter() > deadline
                    ):
                        break
                    time.sleep(0.5)
                # Let the coalesced meter recomputes the last deliveries queued finish too.
                time.sleep(2.0)
                books = _books(sync_url, source.name)
            wall = time.perf_counter() - started
            span = (
                (books["last_handled_at"] - books["first_handled_at"]).total_seconds()
                if books["first_handled_at"] is not None
                else None
            )
            expected_readings = books["stored"] * source.readings_per_delivery
            # The provider's deliveries are numbered 0 … stored-1 (bare's rows are another source).
            fetches = source.fetch_books(books["stored"])
            report["drain"] = {
                "deliveries": books["stored"],
                "handled": books["handled"],
                "handled_exactly_once": books["handled_exactly_once"],
                "failed": books["failed"],
                "lost": books["stored"] - books["handled"],
                "readings": books["readings"],
                "readings_expected": expected_readings,
                "readings_duplicated": books["readings"] - books["distinct_readings"],
                "meter_snapshots": books["snapshots"],
                "events_per_s": books["handled"] / span if span else None,
                "events_per_s_per_worker": books["handled"] / span / workers if span else None,
                "wall_s_including_worker_start": wall,
                "fetch_after_notify": fetches,
                "books_balance": books["handled"] == books["stored"]
                and books["handled_exactly_once"] == books["stored"]
                and books["readings"] == expected_readings
                and books["readings"] == books["distinct_readings"]
                and (fetches is None or fetches["each_delivery_fetched_exactly_once"]),
            }
    finally:
        keys = list(broker.scan_iter(match=f"{prefix}*"))
        if keys:
            broker.delete(*keys)
    report["machine"]["loadavg_after"] = os.getloadavg()
    return report


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    accept = report["accept"]
    names = ["bare", "provider"]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(12, 4))
    left.bar(names, [accept[n]["throughput_rps"] for n in names], color=["grey", "tab:blue"])
    left.set(
        title=f"accept throughput (ratio {report['ratio']['provider_over_bare_throughput']:.2f})",
        ylabel="requests / s",
    )
    width = 0.35
    xs = range(len(names))
    middle.bar([x - width / 2 for x in xs], [accept[n]["p50_ms"] for n in names], width, label="p50")
    middle.bar([x + width / 2 for x in xs], [accept[n]["p99_ms"] for n in names], width, label="p99")
    middle.set_xticks(list(xs), names)
    middle.set(title=f"latency at {report['settings']['concurrency']} clients", ylabel="ms")
    middle.legend()
    drain = report["drain"]
    right.bar(["per worker", "total"], [drain["events_per_s_per_worker"] or 0, drain["events_per_s"] or 0])
    fetch = " with fetch" if drain["fetch_after_notify"] is not None else ""
    right.set(
        title=f"{report['settings']['provider']} drain{fetch}\n{drain['deliveries']} deliveries, "
        f"{report['settings']['workers']} worker(s)",
        ylabel="events / s",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def webhooks(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
    requests: Annotated[int, typer.Option(help="Timed requests per server in the accept comparison.")] = 2000,
    deliveries: Annotated[int, typer.Option(help="Accepted deliveries the workers then drain.")] = 10_000,
    concurrency: Annotated[int, typer.Option(help="Closed-loop clients per server.")] = 16,
    workers: Annotated[int, typer.Option(help="Celery worker processes (solo pool) for the drain.")] = 1,
    users: Annotated[int, typer.Option(help="Users the deliveries are spread over.")] = 50,
    provider: Annotated[str, typer.Option(help=f"Delivery source: {', '.join(SOURCES)}.")] = "terra",
    database: Annotated[
        str, typer.Option(help="Postgres server to create the temporary benchmark database on.")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    broker: Annotated[str, typer.Option(help="Redis broker (a random key prefix keeps the run apart).")] = (
        "redis://127.0.0.1:6379/0"
    ),
    plot: Annotated[Path | None, typer.Option(help="Write a PNG plot here.")] = None,
) -> None:
    """Webhook accept path (verify + inbox insert + enqueue) next to a bare INSERT, then workers draining."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    if provider not in SOURCES:
        raise typer.BadParameter(f"unknown provider {provider!r}; known: {sorted(SOURCES)}")
    if min(requests, deliveries, concurrency, workers, users) < 1:
        raise typer.BadParameter("requests, deliveries, concurrency, workers and users must be at least 1")
    err = Console(stderr=True)
    with Progress(console=err, transient=True) as progress:
        report = run_benchmark(
            database, broker, provider=provider, requests=requests, deliveries=max(deliveries, requests),
            concurrency=concurrency, workers=workers, users=users, progress=progress,
        )  # fmt: skip
    if plot is not None:
        _plot(report, plot)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    out = Console()
    table = Table(
        title=f"POST {report['settings']['path']} vs a bare INSERT "
        f"({concurrency} clients, one uvicorn worker)"
    )
    for column in ("server", "req/s", "p50 ms", "p99 ms", "server CPU ms/req", "errors"):
        table.add_column(column, justify="right")
    for name, row in report["accept"].items():
        cpu = row["server_cpu_ms_per_request"]
        table.add_row(
            name, f"{row['throughput_rps']:.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
            "-" if cpu is None else f"{cpu:.2f}", str(row["errors"]),
        )  # fmt: skip
    out.print(table)
    ratio = report["ratio"]
    out.print(
        f"provider / bare throughput: {ratio['provider_over_bare_throughput']:.2f} "
        f"(≥ {TARGET_THROUGHPUT_RATIO}: {'met' if ratio['met'] else 'NOT met'})"
    )
    drain = report["drain"]
    rate = drain["events_per_s_per_worker"]
    out.print(
        f"drain: {drain['handled']}/{drain['deliveries']} handled, "
        f"{drain['handled_exactly_once']} exactly once, "
        f"{drain['lost']} lost, {drain['readings_duplicated']} duplicated readings, "
        f"{'-' if rate is None else f'{rate:.0f}'} events/s per worker ({workers} worker(s)); "
        f"books {'balance' if drain['books_balance'] else 'DO NOT balance'}"
    )
    fetches = drain["fetch_after_notify"]
    if fetches is not None:
        out.print(
            f"fetch after notify: {fetches['gets']} GETs served for {fetches['gets_expected']} expected "
            f"({fetches['gets_per_delivery']:.0f} per delivery), answers {fetches['answers']}; each delivery "
            f"fetched exactly once: {'yes' if fetches['each_delivery_fetched_exactly_once'] else 'NO'}"
        )
    machine = report["machine"]
    out.print(f"load average before/after: {machine['loadavg_before']} / {machine['loadavg_after']}")
