"""``rhythm bench load``: open-loop latency and CPU of recommend, feedback and webhooks at known utilisations.

Why open loop: ``rhythm bench api`` drives closed-loop clients, each waiting for its answer before it sends
again. Its p99 at 32 clients measured the queue those clients build in one server process, not the service;
and a closed loop slows down when the server stalls, so the stall hides in fewer requests instead of showing
as latency (coordinated omission). Here every request has a send time fixed before the phase starts
(Poisson or fixed-interval arrivals at a target rate) and is fired at that time whatever the earlier ones
are doing; latency is measured from the *scheduled* send time, so a stall shows in every request that
should have gone out during it.

One run, on a freshly migrated temporary Postgres database and the Redis broker (a private key prefix):

* ``bare`` — the bare FastAPI history-read endpoint of ``rhythm bench api`` (one uvicorn worker);
* ``recommend`` — ``POST /v1/recommend`` of the real service with the instant backend (the service's own
  cost: auth, validation, history read, prompt, sampling, the logged insert and commit, middleware);
* ``feedback`` — ``POST /v1/feedback`` answering seeded, unanswered recommendations (one each);
* ``webhooks`` — ``POST /v1/webhooks/terra``, signed Terra ``daily`` deliveries (verify, inbox insert,
  enqueue after commit; no worker drains them).

Per endpoint: a saturating closed-loop calibration measures its capacity (requests/s that got through) and
the server process's CPU per request (``/proc``; ``1000 / cpu_ms`` is also reported, the rate one server CPU
would serve at 100 % busy, which ignores Postgres and the generator sharing the machine). Then
open-loop phases at 30 % and 50 % of that capacity (``--utilisations``), each bounded by ``--duration`` and
``--max-requests``. The load generator is its own process (``python -m app.benchmarks.load``) on loopback,
driven over a line protocol on its stdin/stdout, so its CPU is not the server's and the server's CPU counter
is read around exactly one phase.

Books: after the run the rows are counted (recommendations, feedback, webhook events) and compared with the
2xx answers the generator saw, so every figure comes from real responses.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Annotated, Any

import numpy as np
import typer

ENDPOINTS = ("bare", "recommend", "feedback", "webhooks")
# Issue 16: with the instant backend, recommend's server CPU per request at most 2x the bare read's, and
# p99 at most 25 ms at 30 % and at 50 % of its own measured capacity, with no errors.
TARGET_CPU_RATIO = 2.0
TARGET_P99_MS = 25.0
DEFAULT_UTILISATIONS = (0.3, 0.5)
EXPECTED_STATUS = {"bare": 200, "recommend": 200, "feedback": 200, "webhooks": 202}
# Marks the unanswered recommendations seeded for the feedback phases (the books count their answers).
FEEDBACK_TARGET_MODEL = "load-feedback-target"
REPO_ROOT = Path(__file__).resolve().parents[2]


# --- the load generator (its own process) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    path: str
    body: bytes
    headers: dict[str, str]


def _calls(job: dict[str, Any]) -> list[Call]:
    """Every request of a job, built before the clock starts (signing included) so that building costs the
    generator nothing while it keeps the schedule."""
    kind, count, first = job["endpoint"], job["count"], job.get("first", 0)
    users: list[list[str]] = job["users"]  # [user_id, token]
    json_headers = {"content-type": "application/json"}
    calls: list[Call] = []
    if kind == "bare":
        for i in range(first, first + count):
            calls.append(Call(f"/bare/{users[i % len(users)][0]}", b"", {}))
    elif kind == "recommend":
        body = json.dumps({"meters": job["meters"]}).encode()
        for i in range(first, first + count):
            token = job.get("token_override") or users[i % len(users)][1]
            calls.append(Call("/v1/recommend", body, {**json_headers, "authorization": f"Bearer {token}"}))
    elif kind == "feedback":
        for rec_id, token in job["targets"]:
            body = json.dumps({"recommendation_id": rec_id, "response": "accepted"}).encode()
            calls.append(Call("/v1/feedback", body, {**json_headers, "authorization": f"Bearer {token}"}))
    elif kind == "webhooks":
        from app.benchmarks.webhooks import TerraDeliveries

        source = TerraDeliveries()
        source.secret = job["terra_secret"]
        user_ids = [uuid.UUID(u) for u, _ in users]
        now = datetime.fromisoformat(job["now"])
        for i in range(first, first + count):
            delivery = source.delivery(i, user_ids, now)
            calls.append(Call(source.path, delivery.body, delivery.headers))
    else:
        raise ValueError(f"unknown endpoint {kind!r}")
    return calls


def schedule(rate: float, count: int, arrivals: str, seed: int) -> list[float]:
    """Send offsets in seconds from the phase start: fixed intervals, or Poisson arrivals.

    Poisson arrivals are drawn conditioned on their count: ``count`` uniform times in ``[0, count / rate)``,
    sorted (the arrival times of a Poisson process given how many fell in the interval). Summing exponential
    gaps instead let one seed's draw run 10 % below the target rate in every phase of a run.
    """
    if arrivals == "uniform":
        return [i / rate for i in range(count)]
    times = np.sort(np.random.default_rng(seed).uniform(0.0, count / rate, count))
    return [float(x) for x in times]


@contextmanager
def _garbage_collector_paused() -> Iterator[None]:
    """The generator is the instrument: a collection of its own garbage in mid-phase would stall every request
    in flight and be counted as the server's latency. Collect before the phase, then not until it ends."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _run_job(job: dict[str, Any], calls: list[Call], go: Any) -> dict[str, Any]:
    import httpx

    timeout = float(job["timeout_s"])
    limits = httpx.Limits(max_connections=job.get("max_connections", 256), max_keepalive_connections=64)
    statuses: list[str] = []
    latencies: list[float] = []  # seconds from the scheduled (open loop) or actual (closed loop) send time
    lags: list[float] = []  # actual send - scheduled send: the generator's own delay
    sends: list[float] = []
    dones: list[float] = []
    # perf_counter, not loop.time(): uvloop's clock is cached per loop iteration at millisecond resolution.
    clock = time.perf_counter
    async with httpx.AsyncClient(base_url=job["base"], limits=limits, timeout=timeout) as http:

        async def one(call: Call, scheduled: float) -> None:
            sent = clock()
            sends.append(sent)
            lags.append(sent - scheduled)
            try:
                response = await http.post(call.path, content=call.body, headers=call.headers)
                status = str(response.status_code)
            except httpx.HTTPError as exc:  # a refused or timed-out request is an error, never a crash
                status = type(exc).__name__
            done = clock()
            dones.append(done)
            latencies.append(done - scheduled)
            statuses.append(status)

        await go()
        with _garbage_collector_paused():
            started = clock()
            if job["mode"] == "closed":
                pending = iter(calls)

                async def client() -> None:
                    for call in pending:
                        await one(call, clock())

                await asyncio.gather(*(client() for _ in range(job["concurrency"])))
            else:
                offsets = schedule(job["rate"], len(calls), job["arrivals"], job["seed"])
                start = started + 0.02
                # Bounded in time: nothing is sent, and nothing is waited for, past the timeout after the last
                # scheduled send; what is left then counts as an error.
                deadline = start + (offsets[-1] if offsets else 0.0) + timeout
                tasks: list[asyncio.Task[None]] = []
                for call, offset in zip(calls, offsets, strict=True):
                    delay = start + offset - clock()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif clock() > deadline:
                        break
                    # Fired at its time whatever the earlier requests are doing: the open loop.
                    tasks.append(asyncio.create_task(one(call, start + offset)))
                statuses.extend(["not sent"] * (len(calls) - len(tasks)))
                if tasks:
                    _done, late = await asyncio.wait(tasks, timeout=max(0.0, deadline - clock()))
                    for task in late:
                        task.cancel()
                    statuses.extend(["timeout"] * len(late))
            wall = clock() - started
    spans = {
        "sent_rps": (len(sends) - 1) / (max(sends) - min(sends)) if len(sends) > 1 else None,
        "completed_rps": len(dones) / (max(dones) - started) if dones else None,
    }
    return {**_summarise(job, statuses, latencies, lags, wall), **spans}


def _summarise(
    job: dict[str, Any], statuses: list[str], latencies: list[float], lags: list[float], wall: float
) -> dict[str, Any]:
    expected = str(job["expected_status"])
    counts = Counter(statuses)
    ms = sorted(1000.0 * x for x in latencies)
    lag_ms = sorted(1000.0 * x for x in lags)

    def quantile(values: list[float], q: float) -> float | None:
        return values[min(len(values) - 1, int(q * len(values)))] if values else None

    return {
        "mode": job["mode"],
        "scheduled": job["count"],
        "answered": len(latencies),
        "ok": counts.get(expected, 0),
        "errors": len(statuses) - counts.get(expected, 0),
        "status_counts": dict(sorted(counts.items())),
        "target_rps": job.get("rate"),
        # Expected answers per second of the phase, its tail (the last answers) included.
        "achieved_rps": counts.get(expected, 0) / wall if wall > 0 else None,
        "wall_s": wall,
        "p50_ms": statistics.median(ms) if ms else None,
        "p90_ms": quantile(ms, 0.90),
        "p99_ms": quantile(ms, 0.99),
        "max_ms": ms[-1] if ms else None,
        "send_lag_p99_ms": quantile(lag_ms, 0.99),
    }


def _serve_jobs(stdin: IO[str], stdout: IO[str]) -> None:
    """The generator's loop: read a job, build its requests, say ``ready``, wait for ``go``, run, report."""
    import uvloop

    for line in stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        calls = _calls(job)

        async def go() -> None:
            stdout.write(json.dumps({"ready": True}) + "\n")
            stdout.flush()
            # The parent reads the server's CPU counter between our "ready" and its "go".
            await asyncio.get_running_loop().run_in_executor(None, stdin.readline)

        result = uvloop.run(_run_job(job, calls, go))
        stdout.write(json.dumps(result) + "\n")
        stdout.flush()


class LoadGenerator:
    """The generator process; :meth:`run` hands it one job and reads the server's CPU around that job only."""

    def __init__(self, log: IO[bytes]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.benchmarks.load"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited with {self.process.wait()}")
        result: dict[str, Any] = json.loads(line)
        return result

    def run(self, job: dict[str, Any], server_pid: int) -> dict[str, Any]:
        from app.benchmarks.api import process_cpu_seconds

        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        self._read()  # ready: requests built
        cpu_before = process_cpu_seconds(server_pid)
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        result = self._read()
        cpu_after = process_cpu_seconds(server_pid)
        served = result["answered"]
        result["server_cpu_s"] = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        result["server_cpu_ms_per_request"] = (
            1000.0 * result["server_cpu_s"] / served
            if result["server_cpu_s"] is not None and served
            else None
        )
        return result

    def close(self) -> None:
        if self.process.stdin is not None:
            with suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def load_generator(log_path: Path) -> Iterator[LoadGenerator]:
    with log_path.open("wb") as log:
        generator = LoadGenerator(log)
        try:
            yield generator
        finally:
            generator.close()


# --- seeding and books --------------------------------------------------------------------------------------


async def _seed_feedback_targets(url: str, users: list[tuple[uuid.UUID, str]], count: int) -> list[list[str]]:
    """``count`` unanswered recommendations spread over the users, made a minute ago (well inside the
    feedback window); returns ``[recommendation_id, token]`` pairs in the order the phases consume them."""
    from sqlalchemy import insert

    from app.core.db import Database
    from app.models import Recommendation
    from domain import ACTIONS, METER_NAMES, N_ACTIONS, Slot

    at = datetime.now(UTC) - timedelta(minutes=1)
    rows, targets = [], []
    for i in range(count):
        user_id, token = users[i % len(users)]
        rec_id = uuid.uuid4()
        rows.append(
            {
                "id": rec_id,
                "user_id": user_id,
                "at": at,
                "created_at": at,
                "day": at.weekday(),
                "slot": int(Slot.MORNING),
                **dict.fromkeys(METER_NAMES, 0.5),
                "neutral_meters": False,
                "action": ACTIONS[i % N_ACTIONS],
                "probabilities": [1.0 / N_ACTIONS] * N_ACTIONS,
                "propensity": 1.0 / N_ACTIONS,
                "temperature": 1.0,
                "model": FEEDBACK_TARGET_MODEL,
                "backend": "seed",
            }
        )
        targets.append([str(rec_id), token])
    db = Database(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with db.sessionmaker() as session:
            for chunk in range(0, len(rows), 2000):
                await session.execute(insert(Recommendation), rows[chunk : chunk + 2000])
            await session.commit()
    finally:
        await db.dispose()
    return targets


def _books(url: str) -> dict[str, int]:
    """Rows the run wrote, counted from the tables."""
    from sqlalchemy import func, select

    from app.benchmarks.api import InstantBackend
    from app.core.db import task_session
    from app.models import Feedback, Recommendation, WebhookEvent

    with task_session(url.replace("postgresql://", "postgresql+psycopg://", 1)) as session:
        recommendations = session.scalar(
            select(func.count()).where(Recommendation.backend == InstantBackend.name)
        )
        feedback = session.scalar(
            select(func.count())
            .select_from(Feedback)
            .join(Recommendation, Recommendation.id == Feedback.recommendation_id)
            .where(Recommendation.model == FEEDBACK_TARGET_MODEL)
        )
        webhooks = session.scalar(select(func.count()).where(WebhookEvent.source == "terra"))
    return {"recommend": recommendations or 0, "feedback": feedback or 0, "webhooks": webhooks or 0}


# --- the run ------------------------------------------------------------------------------------------------


@dataclass
class Plan:
    utilisations: tuple[float, ...] = DEFAULT_UTILISATIONS
    duration_s: float = 15.0
    max_requests: int = 4000
    calibration: int = 400
    concurrency: int = 8
    warmup: int = 40
    arrivals: str = "poisson"
    users: int = 32
    timeout_s: float = 10.0
    seed: int = 0
    endpoints: tuple[str, ...] = ENDPOINTS
    token_override: str | None = field(default=None)
    # Another checkout (e.g. main) whose recommend is measured too, in the same run: a before/after figure.
    baseline: Path | None = None
    cpu_rounds: int = 10
    cpu_round_requests: int = 100

    def open_count(self, rate: float) -> int:
        return max(1, min(self.max_requests, math.ceil(rate * self.duration_s)))

    def feedback_needed(self) -> int:
        """Recommendations to seed so that no feedback phase runs out, whatever its capacity."""
        return self.warmup + self.calibration + len(self.utilisations) * self.max_requests


def _endpoint_phases(
    generator: LoadGenerator,
    pid: int,
    endpoint: str,
    base: dict[str, Any],
    plan: Plan,
    progress: Any,
    task: Any,
) -> dict[str, Any]:
    """Warm-up, closed-loop calibration, then one open-loop phase per utilisation."""
    consumed = 0
    targets: list[list[str]] = base.get("targets", [])

    def job(**extra: Any) -> dict[str, Any]:
        nonlocal consumed
        spec = {**base, **extra, "endpoint": endpoint, "expected_status": EXPECTED_STATUS[endpoint]}
        spec["first"] = consumed
        if endpoint == "feedback":
            spec["targets"] = targets[consumed : consumed + spec["count"]]
            spec["count"] = len(spec["targets"])
        consumed += spec["count"]
        return spec

    warm = generator.run(job(mode="closed", concurrency=plan.concurrency, count=plan.warmup), pid)
    calibration = generator.run(job(mode="closed", concurrency=plan.concurrency, count=plan.calibration), pid)
    if progress is not None:
        progress.advance(task)
    # Capacity is what the saturating closed loop got through, on this machine as it is now. The server's
    # CPU per request alone (1000 / cpu_ms: one server CPU 100 % busy) overstates it on 2 shared cores, where
    # Postgres, the generator and other work take their share: at "50 %" of that figure the bare endpoint
    # was past saturation in a trial run.
    cpu_ms = calibration["server_cpu_ms_per_request"]
    capacity = calibration["achieved_rps"]
    phases: dict[str, Any] = {}
    for index, utilisation in enumerate(plan.utilisations):
        rate = utilisation * capacity
        seed = plan.seed * 100 + index  # another draw per phase, the same for every endpoint
        phases[f"{utilisation:g}"] = generator.run(
            job(mode="open", rate=rate, count=plan.open_count(rate), arrivals=plan.arrivals, seed=seed), pid
        )
        if progress is not None:
            progress.advance(task)
    ok_total = warm["ok"] + calibration["ok"] + sum(p["ok"] for p in phases.values())
    # Requests given up on (timed out, connection refused) may still have been written by the server.
    unanswered = sum(
        n
        for p in (calibration, *phases.values())
        for status, n in p["status_counts"].items()
        if not status.isdigit() and status != "not sent"
    )
    return {
        "capacity_rps": capacity,
        "cpu_capacity_rps": 1000.0 / cpu_ms if cpu_ms else None,
        "calibration": calibration,
        "warmup": {"requests": warm["scheduled"], "ok": warm["ok"], "errors": warm["errors"]},
        "open": phases,
        "ok_total": ok_total,
        "unanswered_total": unanswered,
    }


# Student's t 97.5 % quantiles by degrees of freedom (a round count picks the nearest lower entry, which
# errs wide): ten rounds are too few for the normal 1.96.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}  # fmt: skip


def ratio_interval(per_round: list[float]) -> tuple[float, float] | None:
    """95 % interval of the typical per-round CPU ratio: a t interval on the rounds' log ratios, back on the
    ratio scale (around their geometric mean). ``None`` with fewer than two usable rounds."""
    logs = [math.log(r) for r in per_round if r > 0.0]
    if len(logs) < 2:
        return None
    t = _T975[max(df for df in _T975 if df <= len(logs) - 1)]
    half = t * statistics.stdev(logs) / math.sqrt(len(logs))
    mean = statistics.fmean(logs)
    return math.exp(mean - half), math.exp(mean + half)


def ratio_verdict(point: float | None, interval: tuple[float, float] | None, target: float) -> str:
    """``met`` when the whole interval is at or below ``target``, ``missed`` when all of it is above, ``not
    shown`` when it straddles the target; without an interval, the point estimate decides."""
    if interval is None:
        if point is None:
            return "not shown"
        return "met" if point <= target else "missed"
    low, high = interval
    if high <= target:
        return "met"
    return "missed" if low > target else "not shown"


def _interleaved_cpu(
    generator: LoadGenerator,
    servers: dict[str, tuple[str, int, str]],
    common: dict[str, Any],
    plan: Plan,
) -> dict[str, Any]:
    """Server CPU per request of each server in ``plan.cpu_rounds`` interleaved rounds of one client sending
    ``plan.cpu_round_requests`` requests back to back. On a machine shared with other work, CPU time per
    request drifts with what else runs (caches, frequency); rounds taken in turn see the same drift, so their
    ratio is steadier than that of two phases a minute apart."""
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    sent: dict[str, int] = dict.fromkeys(servers, 0)
    for _ in range(plan.cpu_rounds):
        for name, (base, pid, endpoint) in servers.items():
            job = {
                **common, "base": base, "endpoint": endpoint, "expected_status": EXPECTED_STATUS[endpoint],
                "mode": "closed", "concurrency": 1, "count": plan.cpu_round_requests, "first": sent[name],
            }  # fmt: skip
            sent[name] += plan.cpu_round_requests
            rounds[name].append(generator.run(job, pid))
    out: dict[str, Any] = {"rounds": plan.cpu_rounds, "requests_per_round": plan.cpu_round_requests}
    for name, results in rounds.items():
        cpu = [r["server_cpu_s"] for r in results]
        answered = sum(r["answered"] for r in results)
        out[name] = {
            "ok": sum(r["ok"] for r in results),
            "errors": sum(r["errors"] for r in results),
            "server_cpu_ms_per_request": None
            if None in cpu or not answered
            else 1000.0 * sum(cpu) / answered,
            "per_round_ms": [r["server_cpu_ms_per_request"] for r in results],
        }
    for name in servers:
        if name == "bare":
            continue
        per_round = [
            a / b
            for a, b in zip(out[name]["per_round_ms"], out["bare"]["per_round_ms"], strict=True)
            if a and b
        ]
        out[f"{name}_over_bare"] = {
            "pooled": _ratio(
                out[name]["server_cpu_ms_per_request"], out["bare"]["server_cpu_ms_per_request"]
            ),
            "round_median": statistics.median(per_round) if per_round else None,
            "round_min": min(per_round, default=None),
            "round_max": max(per_round, default=None),
            "round_interval95": ratio_interval(per_round),
        }
    if "recommend_baseline" in servers:
        out["recommend_over_baseline"] = _ratio(
            out["recommend"]["server_cpu_ms_per_request"],
            out["recommend_baseline"]["server_cpu_ms_per_request"],
        )
    return out


def run_benchmark(server_url: str, broker_url: str, plan: Plan, progress: Any = None) -> dict[str, Any]:
    """Seed a temporary database, then run every endpoint's phases; returns the report."""
    import redis

    from app.benchmarks.api import METERS, _seed, uvicorn_server

    terra_secret = "load-" + secrets.token_hex(16)
    prefix = f"rhythm-bench-load-{secrets.token_hex(4)}:"
    env = {
        "RHYTHM_BROKER_URL": broker_url,
        "RHYTHM_BROKER_KEY_PREFIX": prefix,
        "RHYTHM_READINESS_REQUIRES_WORKER": "false",
        "RHYTHM_TERRA_WEBHOOK_SECRET": terra_secret,
    }
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "loadavg_before": os.getloadavg(),
        },
        "settings": {
            "utilisations": list(plan.utilisations),
            "duration_s": plan.duration_s,
            "max_requests": plan.max_requests,
            "calibration_requests": plan.calibration,
            "calibration_concurrency": plan.concurrency,
            "arrivals": plan.arrivals,
            "users": plan.users,
            "timeout_s": plan.timeout_s,
            "endpoints": list(plan.endpoints),
        },
        "results": {},
    }
    broker = redis.Redis.from_url(broker_url)
    total = (len(plan.endpoints) + (plan.baseline is not None)) * (1 + len(plan.utilisations)) + 1
    task = progress.add_task("bench load", total=total) if progress is not None else None
    try:
        with temporary_database_and_logs(server_url) as (url, logs):
            users = asyncio.run(_seed(url, plan.users, plan.seed))
            common = {
                "users": [[str(u), t] for u, t in users],
                "meters": METERS,
                "timeout_s": plan.timeout_s,
                "terra_secret": terra_secret,
                "now": datetime.now(UTC).isoformat(),
                **({"token_override": plan.token_override} if plan.token_override else {}),
            }
            with load_generator(logs / "generator.log") as generator, ExitStack() as servers:
                # All servers up at once, so that their CPU per request can be compared in interleaved rounds
                # (the same machine state for each); the idle ones cost ~2 ms of CPU per second.
                up: dict[str, tuple[str, int]] = {}
                if "bare" in plan.endpoints:
                    up["bare"] = servers.enter_context(uvicorn_server("bare", url, logs / "bare.log", env))
                if plan.baseline is not None and "recommend" in plan.endpoints:
                    # The same server command with the other checkout's code first on the import path;
                    # PYTHONSAFEPATH keeps ``python -m`` from putting the current directory (this checkout)
                    # in front of it.
                    other = {**env, "PYTHONPATH": str(plan.baseline), "PYTHONSAFEPATH": "1"}
                    up["recommend_baseline"] = servers.enter_context(
                        uvicorn_server("instant", url, logs / "baseline.log", other)
                    )
                if any(e != "bare" for e in plan.endpoints):
                    up["service"] = servers.enter_context(
                        uvicorn_server("instant", url, logs / "service.log", env)
                    )
                compared = {
                    name: (*up[server], endpoint)
                    for name, server, endpoint in (
                        ("bare", "bare", "bare"),
                        ("recommend_baseline", "recommend_baseline", "recommend"),
                        ("recommend", "service", "recommend"),
                    )
                    if server in up and endpoint in plan.endpoints
                }
                if plan.cpu_rounds and "bare" in compared and "recommend" in compared:
                    report["cpu_interleaved"] = _interleaved_cpu(generator, compared, common, plan)
                    if progress is not None:
                        progress.advance(task)
                # Recommend before feedback, whose answers would lengthen the histories recommend reads.
                order = ["bare", "recommend_baseline", "recommend", "feedback", "webhooks"]
                for name in order:
                    endpoint = "recommend" if name == "recommend_baseline" else name
                    server = "service" if name in ("recommend", "feedback", "webhooks") else name
                    if server not in up or endpoint not in plan.endpoints:
                        continue
                    base, pid = up[server]
                    extra: dict[str, Any] = {}
                    if endpoint == "feedback":
                        needed = plan.feedback_needed()
                        extra["targets"] = asyncio.run(_seed_feedback_targets(url, users, needed))
                    report["results"][name] = _endpoint_phases(
                        generator, pid, endpoint, {**common, **extra, "base": base}, plan, progress, task
                    )
            report["books"] = _books(url)
    finally:
        keys = list(broker.scan_iter(match=f"{prefix}*"))
        if keys:
            broker.delete(*keys)
    report["machine"]["loadavg_after"] = os.getloadavg()
    report["summary"] = _summary(report)
    return report


@contextmanager
def temporary_database_and_logs(server_url: str) -> Iterator[tuple[str, Path]]:
    from app.benchmarks.api import temporary_database

    with temporary_database(server_url) as url, tempfile.TemporaryDirectory() as logs:
        yield url, Path(logs)


def _pooled_cpu_ms(result: dict[str, Any]) -> float | None:
    """Server CPU per request over all open-loop phases of an endpoint."""
    phases = result["open"].values()
    cpu = [p["server_cpu_s"] for p in phases]
    served = sum(p["answered"] for p in phases)
    return None if None in cpu or not served else 1000.0 * sum(cpu) / served


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    results = report["results"]
    interleaved: dict[str, Any] = report.get("cpu_interleaved", {})
    summary: dict[str, Any] = {
        "errors": {
            name: r["warmup"]["errors"]
            + r["calibration"]["errors"]
            + sum(p["errors"] for p in r["open"].values())
            for name, r in results.items()
        },
        # Rows written = 2xx answers, plus at most the requests the generator gave up on (the server may
        # have finished those after the timeout): more rows, or fewer, would be a miscount or a lost write.
        "books_balance": {
            name: 0
            <= report["books"][name] - _answered_ok(results, interleaved, name)
            <= sum(results[key]["unanswered_total"] for key in (name, f"{name}_baseline") if key in results)
            for name in ("recommend", "feedback", "webhooks")
            if name in results
        },
    }
    for name, row in interleaved.items():
        if isinstance(row, dict) and "errors" in row and name in summary["errors"]:
            summary["errors"][name] += row["errors"]
    if "recommend_baseline" in results and "recommend" in results:
        before, after = results["recommend_baseline"], results["recommend"]
        summary["recommend_over_baseline_cpu"] = {
            "calibration": _ratio(
                after["calibration"]["server_cpu_ms_per_request"],
                before["calibration"]["server_cpu_ms_per_request"],
            ),
            "open_pooled": _ratio(_pooled_cpu_ms(after), _pooled_cpu_ms(before)),
        }
        if "bare" in results:
            summary["baseline_over_bare_cpu"] = {
                "calibration": _ratio(
                    before["calibration"]["server_cpu_ms_per_request"],
                    results["bare"]["calibration"]["server_cpu_ms_per_request"],
                ),
                "open_pooled": _ratio(_pooled_cpu_ms(before), _pooled_cpu_ms(results["bare"])),
            }
    if "recommend" in results and "bare" in results:
        rec, bare = results["recommend"], results["bare"]
        ratios = {
            "calibration": _ratio(
                rec["calibration"]["server_cpu_ms_per_request"],
                bare["calibration"]["server_cpu_ms_per_request"],
            ),
            "open_pooled": _ratio(_pooled_cpu_ms(rec), _pooled_cpu_ms(bare)),
            **{
                u: _ratio(
                    rec["open"][u]["server_cpu_ms_per_request"], bare["open"][u]["server_cpu_ms_per_request"]
                )
                for u in rec["open"]
                if u in bare["open"]
            },
        }
        p99 = {u: rec["open"][u]["p99_ms"] for u in rec["open"]}
        summary["recommend_over_bare_cpu"] = ratios
        # The interleaved rounds are the figure of record when run (see _interleaved_cpu).
        primary = interleaved.get("recommend_over_bare", {}).get("pooled") or ratios["open_pooled"]
        # The rounds' spread decides: on a shared machine one pooled figure lands on either side of the target
        # from run to run, so the target counts as met only when the rounds' interval is below it.
        interval = interleaved.get("recommend_over_bare", {}).get("round_interval95")
        verdict = ratio_verdict(primary, interval, TARGET_CPU_RATIO)
        summary["targets"] = {
            "cpu_ratio": primary,
            "cpu_ratio_source": "interleaved" if interleaved else "open_pooled",
            "cpu_ratio_interval95": interval,
            "cpu_ratio_target": TARGET_CPU_RATIO,
            "cpu_ratio_verdict": verdict,
            "cpu_ratio_met": verdict == "met",
            "recommend_p99_ms": p99,
            "p99_target_ms": TARGET_P99_MS,
            "p99_met": all(v is not None and v <= TARGET_P99_MS for v in p99.values()),
            "zero_errors_met": summary["errors"]["recommend"] == 0,
        }
    return summary


def _answered_ok(results: dict[str, Any], interleaved: dict[str, Any], name: str) -> int:
    keys = (name, f"{name}_baseline")
    return int(
        sum(results[k]["ok_total"] for k in keys if k in results)
        + sum(interleaved.get(k, {}).get("ok", 0) for k in keys)
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


# --- output -------------------------------------------------------------------------------------------------


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    names = list(results)
    utilisations = [f"{u:g}" for u in report["settings"]["utilisations"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / (2 * len(utilisations))
    for j, u in enumerate(utilisations):
        for k, (q, hatch) in enumerate((("p50_ms", ""), ("p99_ms", "//"))):
            offset = (2 * j + k - len(utilisations) + 0.5) * width
            left.bar(
                [i + offset for i in range(len(names))],
                [results[n]["open"][u][q] or 0 for n in names],
                width,
                hatch=hatch,
                label=f"{q[:3]} at {float(u):.0%}",
            )
    left.axhline(TARGET_P99_MS, color="grey", linestyle="--", linewidth=1, label="p99 target (recommend)")
    labels = [n.replace("_", "\n") for n in names]  # "recommend_baseline" on two lines
    left.set_xticks(range(len(names)), labels)
    # Log scale: a stall of seconds in one phase would otherwise flatten every other bar.
    left.set(title="open-loop latency from the scheduled send time", ylabel="ms (log)", yscale="log")
    left.legend(fontsize=8)
    cpu = [_pooled_cpu_ms(results[n]) or 0 for n in names]
    right.bar(labels, cpu, color="tab:blue")
    for i, value in enumerate(cpu):
        right.text(i, value, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    ratio = report["summary"].get("recommend_over_bare_cpu", {}).get("open_pooled")
    interleaved = report["summary"].get("targets", {}).get("cpu_ratio")
    right.set(
        title="server CPU per request (open-loop phases)"
        + (f"\nrecommend / bare = {ratio:.2f} here" if ratio else "")
        + (f", {interleaved:.2f} interleaved (target ≤ {TARGET_CPU_RATIO})" if interleaved else ""),
        ylabel="ms",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt_interval(interval: Any) -> str:
    return "n/a" if not interval else f"[{_fmt(interval[0])}, {_fmt(interval[1])}]"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def load(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
    utilisations: Annotated[
        str, typer.Option(help="Comma-separated fractions of each endpoint's measured capacity.")
    ] = "0.3,0.5",
    duration: Annotated[float, typer.Option(help="Seconds of arrivals per open-loop phase.")] = 15.0,
    max_requests: Annotated[int, typer.Option(help="At most this many requests per open-loop phase.")] = 4000,
    calibration: Annotated[
        int, typer.Option(help="Closed-loop requests that measure each endpoint's CPU per request.")
    ] = 400,
    concurrency: Annotated[
        int, typer.Option(help="Closed-loop clients of the calibration (enough to saturate the server).")
    ] = 8,
    warmup: Annotated[int, typer.Option(help="Untimed requests per endpoint before calibrating.")] = 40,
    arrivals: Annotated[str, typer.Option(help="poisson or uniform (fixed intervals).")] = "poisson",
    endpoints: Annotated[
        str, typer.Option(help=f"Comma-separated subset of {','.join(ENDPOINTS)}.")
    ] = ",".join(ENDPOINTS),
    users: Annotated[
        int, typer.Option(help="Users with full 30-day histories the requests spread over.")
    ] = 32,
    timeout: Annotated[float, typer.Option(help="Seconds before an unanswered request is an error.")] = 10.0,
    seed: Annotated[int, typer.Option(help="Seed of the histories and the Poisson arrivals.")] = 0,
    database: Annotated[
        str, typer.Option(help="Postgres server to create the temporary benchmark database on.")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    broker: Annotated[str, typer.Option(help="Redis broker (a random key prefix keeps the run apart).")] = (
        "redis://127.0.0.1:6379/0"
    ),
    plot: Annotated[Path | None, typer.Option(help="Write a PNG plot here.")] = None,
    cpu_rounds: Annotated[
        int, typer.Option(help="Interleaved rounds comparing server CPU per request (0 to skip).")
    ] = 10,
    cpu_round_requests: Annotated[int, typer.Option(help="Requests per server and round.")] = 100,
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="Another checkout (e.g. main) whose recommend is measured too, as recommend_baseline."
        ),
    ] = None,
) -> None:
    """Open-loop latency (from the scheduled send time) and server CPU of recommend, feedback and webhooks
    at fractions of their measured capacity, next to the bare history read."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    chosen = tuple(e.strip() for e in endpoints.split(",") if e.strip())
    if unknown := set(chosen) - set(ENDPOINTS):
        raise typer.BadParameter(f"unknown endpoints: {sorted(unknown)}")
    if arrivals not in ("poisson", "uniform"):
        raise typer.BadParameter("arrivals must be poisson or uniform")
    levels = tuple(float(u) for u in utilisations.split(","))
    if not levels or any(not 0 < u <= 1.5 for u in levels):
        raise typer.BadParameter("utilisations must be fractions in (0, 1.5]")
    if min(max_requests, calibration, concurrency, warmup, users, cpu_round_requests) < 1 or cpu_rounds < 0:
        raise typer.BadParameter("counts must be positive")
    if duration <= 0 or timeout <= 0:
        raise typer.BadParameter("duration and timeout must be positive")
    if baseline is not None and not (baseline / "app" / "benchmarks" / "api.py").is_file():
        raise typer.BadParameter(f"{baseline} is not a Rhythm checkout with app/benchmarks/api.py")
    plan = Plan(
        utilisations=levels, duration_s=duration, max_requests=max_requests, calibration=calibration,
        concurrency=concurrency, warmup=warmup, arrivals=arrivals, users=users, timeout_s=timeout,
        seed=seed, endpoints=chosen, baseline=baseline.resolve() if baseline else None,
        cpu_rounds=cpu_rounds, cpu_round_requests=cpu_round_requests,
    )  # fmt: skip
    with Progress(console=Console(stderr=True), transient=True) as progress:
        report = run_benchmark(database, broker, plan, progress)
    if plot is not None:
        _plot(report, plot)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    out = Console()
    table = Table(title="Open loop, one uvicorn worker each; latency from the scheduled send time")
    for column in (
        "endpoint", "phase", "target req/s", "sent req/s", "p50 ms", "p99 ms", "max ms", "CPU ms/req",
        "send lag p99", "errors",
    ):  # fmt: skip
        table.add_column(column, justify="right")
    for name, result in report["results"].items():
        cal = result["calibration"]
        table.add_row(
            name, f"closed, {plan.concurrency} clients", "-", _fmt(cal["achieved_rps"], 0),
            _fmt(cal["p50_ms"]), _fmt(cal["p99_ms"]), _fmt(cal["max_ms"]),
            _fmt(cal["server_cpu_ms_per_request"]), "-", str(cal["errors"]),
        )  # fmt: skip
        for u, row in result["open"].items():
            table.add_row(
                "", f"{float(u):.0%} of {result['capacity_rps']:.0f}", _fmt(row["target_rps"], 1),
                _fmt(row["sent_rps"], 1), _fmt(row["p50_ms"]), _fmt(row["p99_ms"]), _fmt(row["max_ms"]),
                _fmt(row["server_cpu_ms_per_request"]), _fmt(row["send_lag_p99_ms"]), str(row["errors"]),
            )  # fmt: skip
    out.print(table)
    summary = report["summary"]
    if interleaved := report.get("cpu_interleaved"):
        for name, row in interleaved.items():
            if name.endswith("_over_bare"):
                out.print(
                    f"interleaved ({interleaved['rounds']} x {interleaved['requests_per_round']} requests): "
                    f"{name.removesuffix('_over_bare')} / bare server CPU per request {_fmt(row['pooled'])} "
                    f"(rounds: median {_fmt(row['round_median'])}, {_fmt(row['round_min'])}–"
                    f"{_fmt(row['round_max'])}; 95 % interval {_fmt_interval(row['round_interval95'])})"
                )
        if "recommend_over_baseline" in interleaved:
            out.print(
                f"interleaved: recommend / baseline checkout {_fmt(interleaved['recommend_over_baseline'])}"
            )
    for key, label in (
        ("recommend_over_baseline_cpu", "recommend / baseline checkout"),
        ("baseline_over_bare_cpu", "baseline checkout / bare"),
    ):
        if key in summary:
            text = ", ".join(f"{k} {_fmt(v)}" for k, v in summary[key].items())
            out.print(f"{label} server CPU per request: {text}")
    if targets := summary.get("targets"):
        ratios = ", ".join(f"{k} {_fmt(v)}" for k, v in summary["recommend_over_bare_cpu"].items())
        out.print(f"recommend / bare server CPU per request: {ratios}")
        p99 = ", ".join(f"{float(u):.0%} {_fmt(v)} ms" for u, v in targets["recommend_p99_ms"].items())
        out.print(
            f"targets: CPU ratio {_fmt(targets['cpu_ratio'])} ({targets['cpu_ratio_source']}; "
            f"95 % interval {_fmt_interval(targets['cpu_ratio_interval95'])}; "
            f"≤ {TARGET_CPU_RATIO}: {targets['cpu_ratio_verdict']}); recommend p99 {p99} "
            f"(≤ {TARGET_P99_MS} ms: {'met' if targets['p99_met'] else 'NOT met'}); "
            f"errors {summary['errors']['recommend']} ({'met' if targets['zero_errors_met'] else 'NOT met'})"
        )
    out.print(f"books (rows = 2xx answers): {summary['books_balance']}; rows {report['books']}")
    machine = report["machine"]
    out.print(f"load average before/after: {machine['loadavg_before']} / {machine['loadavg_after']}")


if __name__ == "__main__":
    _serve_jobs(sys.stdin, sys.stdout)
