"""Drive simulated people through a running stack, day by day in lockstep, and keep the books.

Each simulated day: every person's device pushes last night's sleep and today's first daily summary as signed
Terra webhooks (values from :mod:`sim.observe` on their true meters) or, for WHOOP wearers, as WHOOP
notifications whose records the worker fetches from the local WHOOP API; then, for each of the four slots, the
simulation asks ``POST /v1/recommend`` for the slot's moment (``at``), lets :class:`sim.env.LifeEnv` decide
the person's response with the simulator's response model, and answers ``POST /v1/feedback``. With calendars
(:mod:`app.simulate.calendar`), the day's accepted recommendations and the person's own life then go into
their Google calendar on the local Calendar API, and one push notification per changed calendar makes the
stack sync it; that life is drawn at the day's start and acts on the person's true meters in the slots where
they do not accept the recommendation (:func:`own_actions`), unless ``life_acts`` is off. Simulated time is
only in the data (``at``, the readings' and events' timestamps); signatures, leases and beat keep the real
clock.

Meters: the service computes its snapshots at its own clock, which a simulation running weeks in minutes
cannot move, so the meters sent with each recommendation are what the bridge's own code (Terra or WHOOP
mapping, ``normalise``, ``estimate_meters``) gives at the simulated moment from the readings the service
accepted. The books at the end check that the service stored exactly those readings. With calendars, the
context inputs go in too, as the meters job adds them (``bridges.google.context.context_inputs`` at that
moment, no history of them): from the person's calendar as the sync stores it, and from a simulated task
list (``sim.observe.TaskLists``) whose ticks follow the person's true progress.

With ``sweep``, people come in twins with the same hidden profile: one of each pair gets the weekly
fine-tune (queued through the ops API at each week boundary, waited for), the other never does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from app.recommend.slots import local_slot
from app.simulate import calendar as calendar_sim
from app.simulate import terra
from app.simulate import whoop as whoop_sim
from app.simulate.client import Api, Calls
from app.simulate.lag import queue_lag
from bridges.google.context import context_inputs
from bridges.meters import Reading, estimate_meters
from bridges.meters.baselines import BASELINE_DAYS
from bridges.meters.signals import normalise
from bridges.terra.provider import TerraProvider
from bridges.whoop.provider import WhoopProvider
from domain import ACTION_INDEX, METERS, N_ACTIONS, RESPONSES, Action, Response
from sim.env import LifeEnv
from sim.observe import DEFAULT_MISSING, DayObservation, DeviceBaselines, TaskLists, observe
from sim.profiles import sample_profiles

# The hour each slot is simulated at (local = UTC for simulated people): inside Morning 05-12, Afternoon
# 12-17, Evening 17-22, Night 22-05.
SLOT_HOURS = (8, 13, 18, 23)
RESCHEDULE_AFTER = timedelta(hours=5)
# Seconds to wait at least for the last meter recomputes after the inbox drained (the drain's budget if
# longer).
RECOMPUTE_WAIT_S = 15
# Pages of the ops inbox listing read per state while draining (200 events each).
MAX_PAGES = 50
# Mornings of true meters needed before their trailing mean is a baseline worth comparing with.
MIN_HISTORY = 7
FINETUNE_DONE = frozenset({"succeeded", "skipped", "cancelled"})
# Without the sweep everybody is in one arm; with it, twins split into the two others.
ARM_ALL, ARM_ADAPTERS, ARM_BASE = "all", "adapters", "base"
# Whose wearable is which: Terra pushes its data; WHOOP notifies and the worker fetches from its API.
PROVIDERS = ("terra", "whoop", "mix")
# Simulated people live in UTC (``POST /v1/users`` with ``"timezone": "UTC"``).
PEOPLE_TZ = ZoneInfo("UTC")


@dataclass(frozen=True)
class SimConfig:
    base_url: str
    admin_token: str
    terra_secret: str
    users: int = 4
    weeks: int = 2
    warmup_weeks: int = 1
    profiles: str = "archetypes"
    seed: int = 0
    concurrency: int = 8
    sweep: bool = False
    # Simulated weeks (1-based) after which the sweep runs; empty: after every week but the last. The service
    # keeps one job per user and *real* ISO week, and a job skipped for too little history is not queued
    # again that week, so a run of minutes gets one useful sweep: aim it where the history is long enough.
    sweep_after: tuple[int, ...] = ()
    missing: float = DEFAULT_MISSING
    drain_timeout: float = 300.0
    sweep_timeout: float = 1800.0
    retry_for: float = 120.0
    # terra | whoop | mix (every other person on WHOOP); WHOOP needs ``whoop_secret``, the stack's database
    # (``sync_database_url``) and ``secret_key`` to store connections, and a ``WhoopWorld`` in the Simulation.
    provider: str = "terra"
    whoop_secret: str = ""
    sync_database_url: str = ""
    secret_key: str = ""
    # Everybody also keeps a Google calendar on the local Calendar API (a ``CalendarWorld`` in the
    # Simulation; like WHOOP it needs ``sync_database_url`` and ``secret_key`` to store the connections).
    calendar: bool = False
    # With calendars: the person's own life (a party, a spin class) acts on their true meters in its slot
    # when they do not take up the recommendation. False: the calendar's life is scenery, as before
    # 2026-12-04 (for comparing with figures measured then).
    life_acts: bool = True

    def provider_of(self, index: int) -> str:
        if self.provider == "mix":
            return "whoop" if index % 2 else "terra"
        return self.provider


@dataclass
class Person:
    index: int
    user_id: uuid.UUID
    token: str
    arm: str
    provider: str = "terra"
    readings: list[Reading] = field(default_factory=list)

    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Answer:
    """One answered recommendation: simulated week (0 = first after warm-up), person, response, adapter."""

    week: int
    person: int
    arm: str
    response: int
    adapter: str | None


@dataclass(frozen=True)
class MeterPair:
    """A simulated morning: the person's true meters, their deviation from the person's own trailing 28-day
    mean (NaN before 7 days of history), and the bridge's estimate (NaN = missing)."""

    person: int
    week: int
    true: tuple[float, ...]
    deviation: tuple[float, ...]
    bridge: tuple[float, ...]


@dataclass
class Ledger:
    """What the simulation sent and what the service acknowledged, for the books."""

    deliveries: dict[str, tuple[uuid.UUID, str, int]] = field(
        default_factory=dict
    )  # trace -> user, kind, status
    feedback: dict[uuid.UUID, tuple[int, str, int]] = field(
        default_factory=dict
    )  # rec -> person, answer, status
    sources: set[str] = field(default_factory=set)  # the webhook sources delivered to
    # Calendar push notifications: inbox external id (``<channel>:<number>``) -> user, status.
    calendar_notifications: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    recommendations: int = 0
    recommend_failed: int = 0
    # (wall time, who answered: local / vllm / fallback) of each answered recommendation.
    backends: list[tuple[float, str]] = field(default_factory=list)
    finetune_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # job id -> last view
    sweeps: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SimResult:
    config: SimConfig
    start: datetime
    people: list[Person]
    answers: list[Answer]
    meters: list[MeterPair]
    ledger: Ledger
    calls: Calls
    books: dict[str, Any]
    wall_s: float
    events: list[dict[str, Any]] = field(default_factory=list)


def simulation_start(now: datetime, weeks: int) -> datetime:
    """A Monday 00:00 UTC far enough back that the whole run (``weeks`` in all) ends before today."""
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return monday - timedelta(weeks=weeks + 1)


class Simulation:
    """One run; :meth:`run` returns the result. ``on_day(day)`` (async) is awaited once each simulated
    day's pushes are acknowledged (while the worker processes them), ``before_books()`` before the books are
    kept: the fault schedule hooks in there."""

    def __init__(
        self,
        config: SimConfig,
        on_day: Any = None,
        before_books: Any = None,
        whoop: whoop_sim.WhoopWorld | None = None,
        calendar: calendar_sim.CalendarWorld | None = None,
    ) -> None:
        if config.provider not in PROVIDERS:
            raise ValueError(f"provider: expected one of {', '.join(PROVIDERS)}")
        if config.provider != "terra" and (whoop is None or not config.whoop_secret):
            raise ValueError("WHOOP people need a WhoopWorld (the local provider API) and the WHOOP secret")
        if config.calendar and calendar is None:
            raise ValueError("calendars need a CalendarWorld (the local Calendar API)")
        self.config = config
        self.whoop = whoop
        self.calendar = calendar if config.calendar else None
        # Accepted recommendations of the current simulated day: (person, action, slot moment).
        self._accepted: list[tuple[Person, Action, datetime]] = []
        self._whoop_provider = WhoopProvider(config.whoop_secret)
        self.api = Api(config.base_url, concurrency=config.concurrency, retry_for=config.retry_for)
        self.ledger = Ledger()
        self.answers: list[Answer] = []
        self.meter_pairs: list[MeterPair] = []
        self.people: list[Person] = []
        self._terra = TerraProvider(config.terra_secret)
        self._on_day = on_day
        self._before_books = before_books
        self.events: list[dict[str, Any]] = []
        # Every simulated morning's true meters (N, 5), warm-up included: the trailing baseline of the truth.
        self._mornings: list[np.ndarray] = []
        # With calendars: everybody's Google task list, and the run's first midnight (its day 0).
        self.tasks: TaskLists | None = None
        self._start = datetime.min.replace(tzinfo=UTC)

    def _admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.config.admin_token}"}

    async def run(self) -> SimResult:
        started = time.monotonic()
        try:
            start = await self._live()
            if self._before_books is not None:
                await self._before_books()
            books = await self.books()
        finally:
            await self.api.aclose()
        return SimResult(
            self.config,
            start,
            self.people,
            self.answers,
            self.meter_pairs,
            self.ledger,
            self.api.calls,
            books,
            time.monotonic() - started,
            self.events,
        )

    # --- people ----------------------------------------------------------------------------------------

    async def _create_people(self, n: int) -> None:
        async def create(i: int) -> Person:
            response = await self.api.request(
                "POST /v1/users", "POST", "/v1/users", headers=self._admin(), json={"timezone": "UTC"}
            )
            if response is None or response.status_code != 201:
                raise RuntimeError(f"could not create a user: {None if response is None else response.text}")
            body = response.json()
            arm = (ARM_ADAPTERS if i % 2 == 0 else ARM_BASE) if self.config.sweep else ARM_ALL
            provider = self.config.provider_of(i)
            return Person(i, uuid.UUID(body["user_id"]), body["token"], arm, provider)

        self.people = list(await asyncio.gather(*(create(i) for i in range(n))))
        await asyncio.gather(
            *(self._deliver(terra.auth(p.user_id), p) for p in self.people if p.provider == "terra")
        )
        if self.whoop is not None and any(p.provider == "whoop" for p in self.people):
            for p in self.people:
                if p.provider == "whoop":
                    self.whoop.add(p.user_id)
            # WHOOP's consent flow ends in our OAuth callback, which a simulation cannot click through:
            # the connection it would store is written directly, tokens encrypted with the stack's key.
            await asyncio.to_thread(
                whoop_sim.link, self.config.sync_database_url, self.config.secret_key, self.whoop
            )
        if self.calendar is not None:
            for p in self.people:
                self.calendar.add(p.user_id)
            await asyncio.to_thread(
                calendar_sim.link, self.config.sync_database_url, self.config.secret_key, self.calendar
            )

    def _morning(
        self, person: Person, seen: DayObservation, day_start: datetime
    ) -> list[terra.Delivery | whoop_sim.Delivery]:
        if person.provider == "whoop":
            assert self.whoop is not None
            return list(self.whoop.morning(person.user_id, seen, person.index, day_start))
        return list(terra.morning(person.user_id, seen, person.index, day_start))

    async def _deliver(self, delivery: terra.Delivery | whoop_sim.Delivery, person: Person) -> None:
        secret = self.config.whoop_secret if delivery.source == "whoop" else self.config.terra_secret
        response = await self.api.request(
            f"POST {delivery.path}",
            "POST",
            delivery.path,
            headers=lambda: delivery.headers(secret),
            content=delivery.body,
        )
        status = 0 if response is None else response.status_code
        self.ledger.deliveries[delivery.trace] = (delivery.user_id, delivery.kind, status)
        self.ledger.sources.add(delivery.source)
        if 200 <= status < 300 and delivery.kind != "auth":
            # What the service's bridge makes of this delivery: the same parse, mapping and checks (for
            # WHOOP, its fetch run on the documents registered for the worker to fetch).
            if delivery.source == "whoop":
                assert self.whoop is not None
                event = self._whoop_provider.parse({}, delivery.body)
                raw = self._whoop_provider.fetch_readings(event, whoop_sim.RegisteredRecords(self.whoop.api))
            else:
                raw = self._terra.to_readings(self._terra.parse({}, delivery.body))
            readings, _ = normalise(raw)
            person.readings.extend(readings)

    # --- the simulated weeks ------------------------------------------------------------------------------

    async def _live(self) -> datetime:
        config = self.config
        rng = np.random.default_rng(config.seed)
        profiles = sample_profiles(rng, config.users, config.profiles)
        if config.sweep:
            profiles = profiles.repeat(2)  # twins: rows 2i and 2i+1 share profile i
        n = len(profiles)
        env = LifeEnv(profiles)
        env.reset(config.seed)
        device = DeviceBaselines.sample(np.random.default_rng([config.seed, 1]), n)
        observe_rng = np.random.default_rng([config.seed, 2])
        warmup_rng = np.random.default_rng([config.seed, 3])
        tasks_rng = np.random.default_rng([config.seed, 5])  # [seed, 4] is the CalendarWorld's
        if self.calendar is not None:
            self.tasks = TaskLists.empty(tasks_rng, n)
        await self._create_people(n)
        total_weeks = config.warmup_weeks + config.weeks
        start = self._start = simulation_start(datetime.now(UTC), total_weeks)
        for day in range(7 * total_weeks):
            day_start = start + timedelta(days=day)
            self._mornings.append(env.observation().meters)
            seen = observe(observe_rng, device, self._mornings[-1], missing=config.missing)
            if self.tasks is not None:
                self.tasks.day(tasks_rng, day, self._mornings[-1], missing=config.missing)
            await asyncio.gather(
                *(self._deliver(d, p) for p in self.people for d in self._morning(p, seen, day_start))
            )
            if self._on_day is not None:
                await self._on_day(day)
            week = day // 7 - config.warmup_weeks
            # The day's own life (calendar runs): drawn before it is lived, so that a party in someone's
            # calendar happens to them in its slot when they do not take up the recommendation.
            life = self._plan_life(day_start)
            for slot, hour in enumerate(SLOT_HOURS):
                own = None if life is None or not config.life_acts else own_actions(self.people, life, slot)
                if week < 0:
                    # Warm-up: the devices record a normal life (baselines fill), nobody is asked anything.
                    env.step(warmup_rng.integers(0, N_ACTIONS, size=n), own=own)
                    continue
                await self._slot(env, week, day_start + timedelta(hours=hour), slot == 0, own)
            if self.calendar is not None:
                await self._calendar_day(self.calendar, day_start, life or [])
            if week >= 0 and day % 7 == 6 and config.sweep and self._sweeps_after(week + 1):
                await self._sweep(week)
        return start

    def _plan_life(self, day_start: datetime) -> list[calendar_sim.PlannedLife] | None:
        if self.calendar is None:
            return None
        # Planned whether or not life acts, so that both settings put the same events in the same calendars.
        return [plan for p in self.people for plan in self.calendar.plan_day(p.user_id, day_start)]

    async def _slot(
        self, env: LifeEnv, week: int, at: datetime, record_meters: bool, own: np.ndarray | None = None
    ) -> None:
        true = env.observation().meters
        history = np.array(self._mornings[-1 - BASELINE_DAYS : -1])
        deviation = true - history.mean(axis=0) if len(history) >= MIN_HISTORY else np.full_like(true, np.nan)
        estimates = [
            estimate_meters([*p.readings, *self._context(p, at)], at, PEOPLE_TZ) for p in self.people
        ]
        sent: list[dict[str, float]] = []
        for p, report in zip(self.people, estimates, strict=True):
            values = report.values()
            # A meter without input is shown to the model as 0.5, as the service shows a snapshot's gap.
            sent.append({name: 0.5 if v is None else v for name, v in values.items()})
            if record_meters:
                bridge = tuple(np.nan if (v := values[m.value]) is None else v for m in METERS)
                self.meter_pairs.append(
                    MeterPair(
                        p.index,
                        week,
                        tuple(map(float, true[p.index])),
                        tuple(map(float, deviation[p.index])),
                        bridge,
                    )
                )
        answers = await asyncio.gather(
            *(self._recommend(p, at, meters) for p, meters in zip(self.people, sent, strict=True))
        )
        # Everybody steps in lockstep: a person whose recommendation failed (counted) does something at random
        # and sends no feedback.
        fallback = np.random.default_rng(int(at.timestamp()))
        actions = np.array(
            [ACTION_INDEX[a[0]] if a else int(fallback.integers(0, N_ACTIONS)) for a in answers],
            dtype=np.int64,
        )
        step = env.step(actions, own=own)
        feedback = []
        for p, answer, code in zip(self.people, answers, step.responses, strict=True):
            if answer is None:
                continue
            _, rec_id, adapter = answer
            self.answers.append(Answer(week, p.index, p.arm, int(code), adapter))
            if RESPONSES[int(code)] == Response.ACCEPTED:
                self._accepted.append((p, answer[0], at))
            feedback.append(self._feedback(p, rec_id, RESPONSES[int(code)].value, at))
        await asyncio.gather(*feedback)

    def _context(self, person: Person, at: datetime) -> list[Reading]:
        """The calendar and task inputs the meters job would add at ``at`` (none without calendars)."""
        if self.calendar is None or self.tasks is None:
            return []
        events = self.calendar.synced_events(person.user_id, PEOPLE_TZ)
        tasks = calendar_sim.task_records(self.tasks, person.index, self._start)
        return context_inputs(at, PEOPLE_TZ, events, tasks).readings()

    async def _recommend(
        self, person: Person, at: datetime, meters: dict[str, float]
    ) -> tuple[Action, uuid.UUID, str | None] | None:
        key = uuid.uuid4().hex
        response = await self.api.request(
            "POST /v1/recommend",
            "POST",
            "/v1/recommend",
            headers={**person.auth(), "idempotency-key": key},
            json={"at": at.isoformat(), "meters": meters},
        )
        if response is None or response.status_code != 200:
            self.ledger.recommend_failed += 1
            return None
        self.ledger.recommendations += 1
        body = response.json()
        self.ledger.backends.append((time.time(), str(body.get("backend"))))
        return Action(body["action"]), uuid.UUID(body["recommendation_id"]), body.get("adapter")

    async def _feedback(self, person: Person, rec_id: uuid.UUID, answer: str, at: datetime) -> None:
        body: dict[str, Any] = {"recommendation_id": str(rec_id), "response": answer}
        if answer == "rescheduled":
            body["rescheduled_to"] = (at + RESCHEDULE_AFTER).isoformat()
        response = await self.api.request(
            "POST /v1/feedback",
            "POST",
            "/v1/feedback",
            headers={**person.auth(), "idempotency-key": uuid.uuid4().hex},
            json=body,
        )
        status = 0 if response is None else response.status_code
        self.ledger.feedback[rec_id] = (person.index, answer, status)

    # --- the calendar ------------------------------------------------------------------------------------

    async def _calendar_day(
        self, world: calendar_sim.CalendarWorld, day_start: datetime, life: list[calendar_sim.PlannedLife]
    ) -> None:
        """After the day's feedback was stored (so no event can answer an open recommendation): yesterday's
        doomed events cancelled, the accepted recommendations and the person's own life (planned at the
        day's start) put in, and one push notification per calendar that changed."""
        world.cancel_pending()
        for person, action, at in self._accepted:
            world.accepted(person.user_id, action, at)
        self._accepted.clear()
        world.put_life(life)
        await asyncio.gather(*(self._notify(n) for n in world.notifications()))

    async def _notify(self, notification: calendar_sim.Notification) -> None:
        response = await self.api.request(
            f"POST {calendar_sim.PATH}",
            "POST",
            calendar_sim.PATH,
            headers=notification.headers,
        )
        status = 0 if response is None else response.status_code
        self.ledger.calendar_notifications[notification.external_id] = (notification.user_id, status)
        self.ledger.sources.add(calendar_sim.SOURCE)

    # --- the weekly sweep ----------------------------------------------------------------------------------

    def _sweeps_after(self, week: int) -> bool:
        if self.config.sweep_after:
            return week in self.config.sweep_after
        return week < self.config.weeks

    async def _sweep(self, week: int) -> None:
        """Queue this week's fine-tune of every person in the adapters arm and wait until each job is done."""
        started = time.monotonic()
        ids: list[str] = []
        for person in self.people:
            if person.arm != ARM_ADAPTERS:
                continue
            response = await self.api.request(
                "POST /v1/ops/finetune-jobs",
                "POST",
                "/v1/ops/finetune-jobs",
                headers=self._admin(),
                json={"user_id": str(person.user_id)},
            )
            if response is not None and response.status_code == 202:
                ids.extend(response.json()["job_ids"])
        deadline = time.monotonic() + self.config.sweep_timeout
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            # One listing per poll, not one request per job: 30 jobs polled one by one every 2 s ran into the
            # admin rate limit (429).
            for job in await self._jobs_listed():
                job_id = str(job["id"])
                if job_id not in pending:
                    continue
                self.ledger.finetune_jobs[job_id] = job
                failed_for_good = job["status"] == "failed" and job["attempt"] >= job["max_attempts"]
                if job["status"] in FINETUNE_DONE or failed_for_good:
                    pending.discard(job_id)
            if pending:
                await asyncio.sleep(2.0)
        self.ledger.sweeps.append(
            {
                "after_week": week + 1,
                "jobs": len(ids),
                "unfinished": len(pending),
                "wait_s": time.monotonic() - started,
            }
        )

    async def _jobs_listed(self) -> list[dict[str, Any]]:
        """Every fine-tune job the ops API lists, newest first (empty when it does not answer)."""
        jobs: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            response = await self.api.request(
                "GET /v1/ops/finetune-jobs",
                "GET",
                "/v1/ops/finetune-jobs",
                headers=self._admin(),
                params=params,
            )
            if response is None or response.status_code != 200:
                break
            page = response.json()
            jobs += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        return jobs

    # --- the books ----------------------------------------------------------------------------------------

    async def our_inbox(self, status: str | None = None) -> list[dict[str, Any]] | None:
        """Our events (every source we delivered to) in the inbox as operators see them (``None``: the API
        did not answer).

        Ours by external id (the trace we sent), not by user: an event gets its user when it is processed.
        """
        found: list[dict[str, Any]] = []
        for source in sorted(self.ledger.sources) or ["terra"]:
            page = await self._inbox_of(source, status)
            if page is None:
                return None
            found += page
        return found

    async def _inbox_of(self, source: str, status: str | None) -> list[dict[str, Any]] | None:
        ours = {f"trace:{trace}" for trace in self.ledger.deliveries} | set(
            self.ledger.calendar_notifications
        )
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"source": source, "limit": 200}
            if status:
                params["status"] = status
            if cursor:
                params["cursor"] = cursor
            response = await self.api.request(
                "GET /v1/ops/webhook-events",
                "GET",
                "/v1/ops/webhook-events",
                headers=self._admin(),
                params=params,
            )
            if response is None or response.status_code != 200:
                return None
            page = response.json()
            found += [e for e in page["items"] if e["external_id"] in ours]
            cursor = page["next_cursor"]
            if not cursor:
                break
        return found

    async def open_events(self) -> int:
        """How many of our inbox events are pending or failed now (-1: the API did not answer)."""
        pending, failed = await self.our_inbox("pending"), await self.our_inbox("failed")
        return -1 if pending is None or failed is None else len(pending) + len(failed)

    async def drain(self) -> float:
        """Wait until none of our inbox events is pending or failed (the worker retries failed ones)."""
        started = time.monotonic()
        while time.monotonic() - started < self.config.drain_timeout:
            if await self.open_events() == 0:
                break
            await asyncio.sleep(1.0)
        return time.monotonic() - started

    async def _exports(self) -> tuple[dict[uuid.UUID, dict[str, Any]], int]:
        exports: dict[uuid.UUID, dict[str, Any]] = {}
        export_bytes = 0
        for person in self.people:
            response = await self.api.request(
                "GET /v1/users/me/export", "GET", "/v1/users/me/export", headers=person.auth()
            )
            if response is None or response.status_code != 200:
                raise RuntimeError(f"export of {person.user_id} failed")
            export_bytes += len(response.content)
            exports[person.user_id] = response.json()["tables"]
        return exports, export_bytes

    async def books(self) -> dict[str, Any]:
        started = time.monotonic()
        drain_s = await self.drain()
        # The last pushes' meter recomputes run just after their events are handled; one whose message a
        # killed worker held is re-sent by beat's refresh a minute or two later. Wait within the drain's
        # budget.
        budget = max(float(RECOMPUTE_WAIT_S), self.config.drain_timeout)
        while True:
            exports, export_bytes = await self._exports()
            queued = [
                r for t in exports.values() for r in t.get("meter_recomputes", []) if r.get("queued_token")
            ]
            if not queued or time.monotonic() - started > budget:
                break
            await asyncio.sleep(1.0)
        inbox = await self.our_inbox()
        if inbox is None:
            raise RuntimeError("the inbox listing failed")
        books = keep_books(self.people, self.ledger, inbox, exports, export_bytes, drain_s)
        books["open_after_drain"] = await self.open_events()
        books["queue_lag"] = queue_lag(inbox, self.ledger.finetune_jobs.values())
        if self.calendar is not None:
            books["calendar"] = await self._calendar_books(inbox)
        if self.whoop is not None and self.whoop.api.api is not None and self.whoop.users:
            fetched = self.whoop.api.fetch_books()
            books["whoop_fetch"] = fetched
            # A record the worker never read is data lost, whatever the inbox says.
            books["lost_whoop_records"] = fetched["records_never_fetched"]
        return books

    async def _calendar_books(self, inbox: list[dict[str, Any]]) -> dict[str, Any]:
        """The calendar's books once its syncs settled (every requested sync completed; each is debounced a
        few seconds after its notification), or the drain timeout passed."""
        assert self.calendar is not None
        started = time.monotonic()
        while True:
            exports, _ = await self._exports()
            books = calendar_sim.calendar_books(self.calendar, exports)
            settled = books["syncs_pending"] == 0 and books["syncs_completed"] == books["syncs_requested"]
            if settled or time.monotonic() - started > self.config.drain_timeout:
                break
            await asyncio.sleep(1.0)
        notified = self.ledger.calendar_notifications
        handled = {str(e["external_id"]) for e in inbox if e["external_id"] in notified and e["handled_at"]}
        books["settle_s"] = round(time.monotonic() - started, 1)
        books["notifications_sent"] = len(notified)
        books["notifications_acknowledged"] = sum(1 for _, status in notified.values() if 200 <= status < 300)
        books["notifications_handled"] = len(handled)
        return books


def own_actions(people: list[Person], life: list[calendar_sim.PlannedLife], slot: int) -> np.ndarray:
    """``(N,)`` what each person does of their own accord in ``slot`` (an action index, -1: nothing): the
    first event of their life that day which starts in that slot and happened (not cancelled, one of the
    actions). ``LifeEnv.step`` performs it where they do not accept the recommendation."""
    index = {p.user_id: p.index for p in people}
    own = np.full(len(people), -1, dtype=np.int64)
    for plan in sorted(life, key=lambda plan: plan.start):
        action = plan.happened
        i = index[plan.user_id]
        if action is None or own[i] >= 0 or local_slot(plan.start, PEOPLE_TZ).slot != slot:
            continue
        own[i] = ACTION_INDEX[action]
    return own


def keep_books(
    people: list[Person],
    ledger: Ledger,
    inbox: list[dict[str, Any]],
    exports: dict[uuid.UUID, dict[str, Any]],
    export_bytes: int,
    drain_s: float,
) -> dict[str, Any]:
    """Compare what was sent and acknowledged with the inbox (``inbox``: our events, from the ops listing)
    and with each person's export. ``lost_*`` and ``duplicated_*`` must be 0; ``unhandled_events`` are stored
    but not processed yet (after a drain that timed out: waiting for the inbox's sweeper)."""
    events: dict[str, dict[str, Any]] = {}
    event_counts: Counter[str] = Counter()
    for row in inbox:
        key = str(row["external_id"])
        event_counts[key] += 1
        events[key] = row
    acknowledged = {t for t, (_, _, status) in ledger.deliveries.items() if 200 <= status < 300}
    unanswered = {t for t, (_, _, status) in ledger.deliveries.items() if not 200 <= status < 300}
    missing = sorted(t for t in acknowledged if f"trace:{t}" not in events)
    unhandled = sorted(
        t for t in acknowledged if f"trace:{t}" in events and not events[f"trace:{t}"]["handled_at"]
    )
    retried = sum(1 for t in acknowledged if f"trace:{t}" in events and events[f"trace:{t}"]["attempts"] > 1)

    stored_feedback: dict[str, str] = {}
    for tables in exports.values():
        for row in tables.get("feedback", []):
            stored_feedback[str(row["recommendation_id"])] = str(row["response"])
    feedback_ok = {r: a for r, (_, a, status) in ledger.feedback.items() if 200 <= status < 300}
    lost_feedback = sorted(str(r) for r in feedback_ok if str(r) not in stored_feedback)
    wrong_feedback = sorted(str(r) for r, a in feedback_ok.items() if stored_feedback.get(str(r), a) != a)

    expected_readings = 0
    stored_readings = 0
    snapshots = 0
    users_without_snapshot = 0
    # A recompute still queued after the drain: its message may have died with a killed worker (beat's
    # refresh re-sends it a minute after the ingest queue is idle, or after LOST_AFTER, 15 min, while a
    # backlog waits); until then that person's meters do not move.
    recomputes_queued = 0
    rows: Counter[str] = Counter()
    for person in people:
        tables = exports[person.user_id]
        expected_readings += len({(r.source, r.kind.value, r.observed_at) for r in person.readings})
        stored_readings += len(tables.get("signal_readings", []))
        n_snapshots = len(tables.get("meter_snapshots", []))
        snapshots += n_snapshots
        users_without_snapshot += n_snapshots == 0
        recomputes_queued += sum(1 for r in tables.get("meter_recomputes", []) if r.get("queued_token"))
        for name, table_rows in tables.items():
            rows[name] += len(table_rows)

    jobs = ledger.finetune_jobs.values()
    return {
        "drain_s": round(drain_s, 1),
        "deliveries_sent": len(ledger.deliveries),
        "deliveries_acknowledged": len(acknowledged),
        "deliveries_unanswered": len(unanswered),
        "inbox_events": len([t for t in acknowledged if f"trace:{t}" in events]),
        "lost_deliveries": len(missing),
        "unhandled_events": len(unhandled),
        "unhandled_attempts": sorted(int(events[f"trace:{t}"]["attempts"]) for t in unhandled),
        "duplicated_events": sum(1 for c in event_counts.values() if c > 1),
        "events_retried": retried,
        "recommendations": ledger.recommendations,
        "recommend_failed": ledger.recommend_failed,
        "recommendations_by_backend": dict(Counter(backend for _, backend in ledger.backends)),
        "feedback_sent": len(ledger.feedback),
        "feedback_acknowledged": len(feedback_ok),
        "feedback_stored": len([r for r in feedback_ok if str(r) in stored_feedback]),
        "lost_feedback": len(lost_feedback),
        "wrong_feedback": len(wrong_feedback),
        "readings_expected": expected_readings,
        "readings_stored": stored_readings,
        "lost_readings": max(0, expected_readings - stored_readings),
        "meter_snapshots": snapshots,
        "users_without_snapshot": users_without_snapshot,
        "meter_recomputes_queued": recomputes_queued,
        "finetune_jobs": len(ledger.finetune_jobs),
        "finetune_status": dict(Counter(str(j["status"]) for j in jobs)),
        "finetune_gate": dict(Counter(str((j.get("gate") or {}).get("decision")) for j in jobs)),
        "finetune_attempts": {k: int(j["attempt"]) for k, j in ledger.finetune_jobs.items()},
        "rows_by_table": dict(rows),
        "export_bytes": export_bytes,
        "examples": {
            "lost_deliveries": missing[:5],
            "unhandled": unhandled[:5],
            "lost_feedback": lost_feedback[:5],
        },
    }
