"""What Google Calendar would hold and send for a simulated person: one primary calendar on the local Calendar
API (:mod:`app.benchmarks.calendar_api`), with the recommendations the person accepted placed in their slot
and a life of their own (meetings, dinners, family, sport, errands), and a push notification in Google's
channel headers whenever a simulated day changed it, so the stack's real path runs: inbox → coalesced sync
task → ``events.list`` with the sync token → classification.

Each event's true action type is known here (``None``: not one of the ten actions, e.g. a flight; errands
such as a dentist visit are ADMIN_WORK, as in the labelling guide of tests/data/README.md); the books compare
it with the action the bridge stored. The titles are written as people write them, not taken
from the classifier's lexicon, so the accuracy says something about the classifier and not about this file.
Some life events are cancelled the next day (an incremental sync must delete them).

For the meters, :meth:`CalendarWorld.synced_events` reads a person's calendar as the sync stores it (the
bridge's own ``from_google_event`` and rule classifier on each live event), and :func:`task_records` their
simulated task list (``sim.observe.TaskLists``) as Google Tasks rows, for ``bridges.google.context``.

The connect flow (consent → callback → ``calendar.setup_connection``) cannot be clicked through, so the
connection, its calendar and a live push channel are stored directly, tokens encrypted with the stack's key,
as the setup task would leave them; the setup task itself is covered by ``tests/calendar/test_end_to_end``.
"""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import numpy as np

from app.benchmarks.calendar_api import CalendarApi, CalendarState, google_event
from bridges.actions import InvalidEvent, classify, from_google_event
from bridges.google.push import WEBHOOK_PATH, token_hash
from domain import Action
from sim.observe import TaskLists

SOURCE = "google-calendar"
PATH = WEBHOOK_PATH
# Google's default page; the calendar tests use small pages to cross several.
PAGE_SIZE = 250
# How long an accepted recommendation is put in for.
ACCEPTED_MINUTES = 60
# Share of life events the person deletes again the next day.
CANCEL_SHARE = 0.1

# Titles a person gives an activity they decided to do, per action.
ACCEPTED_TITLES: dict[Action, tuple[str, ...]] = {
    Action.DEEP_WORK: ("Deep work", "Focus time: write the proposal", "Thesis chapter"),
    Action.ADMIN_WORK: ("Emails", "Expense report", "Pay bills"),
    Action.LEARN: ("Spanish lesson", "Online course", "Study for exam"),
    Action.SLEEP: ("Nap", "Early night"),
    Action.EXERCISE: ("Gym", "Run", "Yoga class", "Swim"),
    Action.MEDITATE: ("Meditation", "Breathwork"),
    Action.FAMILY_TIME: ("Family dinner", "Play with the kids", "Call mum"),
    Action.SOCIALIZE: ("Drinks with Sam", "Dinner with friends", "Coffee with Alex"),
    Action.ME_TIME: ("Me time", "Spa", "Read a novel"),
    Action.BINGE_WATCH: ("Netflix", "Movie night", "Series marathon"),
}


@dataclass(frozen=True)
class LifeEvent:
    title: str
    truth: Action | None
    hour: int
    minutes: int
    guests: int = 0
    weekdays_only: bool = False


# A life of one's own: what a working person's calendar holds besides our recommendations.
LIFE: tuple[LifeEvent, ...] = (
    LifeEvent("Team standup", Action.ADMIN_WORK, 9, 15, guests=6, weekdays_only=True),
    LifeEvent("1:1 with manager", Action.ADMIN_WORK, 11, 30, guests=1, weekdays_only=True),
    LifeEvent("Quarterly planning", Action.ADMIN_WORK, 14, 90, guests=8, weekdays_only=True),
    LifeEvent("Design review", Action.ADMIN_WORK, 15, 60, guests=4, weekdays_only=True),
    LifeEvent("Focus block", Action.DEEP_WORK, 10, 120, weekdays_only=True),
    LifeEvent("Lunch with Priya", Action.SOCIALIZE, 12, 60, guests=1),
    LifeEvent("Birthday party", Action.SOCIALIZE, 19, 180),
    LifeEvent("Book club", Action.SOCIALIZE, 19, 120, guests=5),
    LifeEvent("Pick up kids", Action.FAMILY_TIME, 16, 30),
    LifeEvent("Sunday lunch at grandma's", Action.FAMILY_TIME, 13, 120),
    LifeEvent("Parents evening at school", Action.FAMILY_TIME, 18, 60),
    LifeEvent("Spin class", Action.EXERCISE, 7, 45),
    LifeEvent("Tennis with Jo", Action.EXERCISE, 18, 60, guests=1),
    LifeEvent("Piano lesson", Action.LEARN, 17, 45),
    LifeEvent("Dentist", Action.ADMIN_WORK, 10, 45),
    LifeEvent("Flight to Berlin", None, 15, 120),
    LifeEvent("Car service", Action.ADMIN_WORK, 9, 60),
)


def resource(event_id: str, summary: str, start: datetime, minutes: int, guests: int = 0) -> dict[str, Any]:
    """A confirmed timed event as ``events.list`` returns it (``updated`` is set by the server)."""
    body = google_event(event_id, summary, start, minutes, created=start - timedelta(days=1))
    if guests:
        body["attendees"] = [{"email": "me@example.com", "self": True, "responseStatus": "accepted"}] + [
            {"email": f"guest{n}@example.com", "responseStatus": "accepted"} for n in range(guests)
        ]
    return body


@dataclass
class Account:
    """One person's Google side: their account on the local API and their live push channel."""

    state: CalendarState
    channel_id: str
    channel_token: str
    resource_id: str
    message_number: int = 1  # 1 was the channel's ``sync`` message, sent when it opened


@dataclass(frozen=True)
class Truth:
    user_id: uuid.UUID
    action: Action | None
    kind: str  # accepted | life


@dataclass(frozen=True)
class PlannedLife:
    """An event of a person's own life, drawn before their day: a ``doomed`` one is cancelled again the
    next day (it did not happen, and it does not act on the person)."""

    user_id: uuid.UUID
    event: LifeEvent
    start: datetime
    doomed: bool

    @property
    def happened(self) -> Action | None:
        """What the person did in it (``None``: cancelled, or nothing among the actions, e.g. a flight)."""
        return None if self.doomed else self.event.truth


@dataclass(frozen=True)
class Notification:
    user_id: uuid.UUID
    external_id: str  # the inbox's dedupe key: ``<channel id>:<message number>``
    headers: dict[str, str]


@dataclass(frozen=True)
class SyncedEvent:
    """The fields of a ``calendar_events`` row that the meters' context inputs read."""

    starts_at: datetime
    ends_at: datetime
    all_day: bool
    transparent: bool
    attendees: int
    action: Action | None
    event_type: str | None
    context: str | None


def synced_event(item: dict[str, Any], tz: tzinfo) -> SyncedEvent | None:
    """What the sync (``app.calendar.sync.apply_events``, without an LLM or corrections) stores of a live
    event resource; ``None`` where it stores nothing."""
    try:
        event = from_google_event(item, tz)
    except InvalidEvent:
        return None
    if event.start is None:
        return None
    verdict = classify(event)
    starts_at = event.start.astimezone(UTC)
    return SyncedEvent(
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=event.minutes or 0),
        all_day=event.all_day,
        transparent=event.transparent,
        attendees=event.attendees,
        action=verdict.action,
        event_type=event.event_type[:32],
        context=verdict.context,
    )


@dataclass(frozen=True)
class TaskRecord:
    """The fields of a ``google_tasks`` row that the meters' context inputs read."""

    status: str
    due: date | None
    completed_at: datetime | None


# A task ticked off on a morning's list was done the evening before (before that morning's slot).
TICKED_AT = timedelta(hours=-2)


def task_records(tasks: TaskLists, person: int, start: datetime) -> list[TaskRecord]:
    """Person ``person``'s tasks so far as rows: due dates and completions on the run's days from ``start``
    (Tasks keeps only the due date; a task is completed at ``TICKED_AT`` from its day's midnight)."""
    out = []
    for due, done in zip(tasks.due[person], tasks.done[person], strict=True):
        if due < 0:
            continue
        completed_at = None if done < 0 else start + timedelta(days=int(done)) + TICKED_AT
        out.append(
            TaskRecord(
                "completed" if done >= 0 else "needsAction",
                (start + timedelta(days=int(due))).date(),
                completed_at,
            )
        )
    return out


@dataclass
class CalendarWorld:
    """Every calendar person's account and events, and the truth about each event."""

    api: CalendarApi
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    accounts: dict[uuid.UUID, Account] = field(default_factory=dict)
    truth: dict[str, Truth] = field(default_factory=dict)  # event id -> truth
    cancelled: set[str] = field(default_factory=set)
    _changed: set[uuid.UUID] = field(default_factory=set)
    _to_cancel: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    # event id -> (revision, what the sync stores of it): each resource is read and classified once.
    _synced: dict[str, tuple[int, SyncedEvent | None]] = field(default_factory=dict)

    def add(self, user_id: uuid.UUID) -> Account:
        state = CalendarState(
            access_token=f"ya29.sim-{secrets.token_hex(12)}",
            refresh_token=f"1//sim-{secrets.token_hex(12)}",
            calendar_id=f"sim-{secrets.token_hex(6)}@example.com",
        )
        self.api.add(state)
        account = Account(
            state,
            channel_id=str(uuid.uuid4()),
            channel_token=secrets.token_urlsafe(32),
            resource_id=f"res-{secrets.token_hex(8)}",
        )
        self.accounts[user_id] = account
        return account

    def _put(
        self, user_id: uuid.UUID, truth: Truth, summary: str, start: datetime, minutes: int, guests: int = 0
    ) -> str:
        event_id = uuid.uuid4().hex  # base32hex, as Google's ids are
        self.accounts[user_id].state.put(resource(event_id, summary, start, minutes, guests))
        self.truth[event_id] = truth
        self._changed.add(user_id)
        return event_id

    def accepted(self, user_id: uuid.UUID, action: Action, at: datetime) -> str:
        """The person put an accepted recommendation into their calendar, in its slot."""
        titles = ACCEPTED_TITLES[action]
        title = titles[int(self.rng.integers(len(titles)))]
        return self._put(user_id, Truth(user_id, action, "accepted"), title, at, ACCEPTED_MINUTES)

    def plan_day(self, user_id: uuid.UUID, day_start: datetime) -> list[PlannedLife]:
        """One to three events of the person's own life on the day from ``day_start``, drawn before the day is
        lived (the simulation lets them act on the person's true meters), put in with :meth:`put_life`."""
        weekday = day_start.weekday() < 5
        choices = [e for e in LIFE if weekday or not e.weekdays_only]
        plans = []
        for index in self.rng.choice(len(choices), size=int(self.rng.integers(1, 4)), replace=False):
            life = choices[int(index)]
            start = day_start + timedelta(hours=life.hour)
            plans.append(PlannedLife(user_id, life, start, doomed=bool(self.rng.random() < CANCEL_SHARE)))
        return plans

    def put_life(self, plans: list[PlannedLife]) -> None:
        """The planned events into their calendars (a doomed one is cancelled again the next day)."""
        for plan in plans:
            life = plan.event
            event_id = self._put(
                plan.user_id,
                Truth(plan.user_id, life.truth, "life"),
                life.title,
                plan.start,
                life.minutes,
                life.guests,
            )
            if plan.doomed:
                self._to_cancel.append((plan.user_id, event_id))

    def cancel_pending(self) -> None:
        for user_id, event_id in self._to_cancel:
            self.accounts[user_id].state.cancel(event_id)
            self.cancelled.add(event_id)
            self._changed.add(user_id)
        self._to_cancel.clear()

    def notifications(self) -> list[Notification]:
        """One ``exists`` notification per calendar that changed since the last call, as Google sends it."""
        out = []
        for user_id in sorted(self._changed):
            account = self.accounts[user_id]
            account.message_number += 1
            number = account.message_number
            headers = {
                "x-goog-channel-id": account.channel_id,
                "x-goog-channel-token": account.channel_token,
                "x-goog-channel-expiration": "Thu, 01 Jan 2099 00:00:00 GMT",
                "x-goog-message-number": str(number),
                "x-goog-resource-id": account.resource_id,
                "x-goog-resource-state": "exists",
                "x-goog-resource-uri": "https://www.googleapis.com/calendar/v3/calendars/"
                + account.state.calendar_id.replace("@", "%40")
                + "/events?alt=json",
            }
            out.append(Notification(user_id, f"{account.channel_id}:{number}", headers))
        self._changed.clear()
        return out

    def synced_events(self, user_id: uuid.UUID, tz: tzinfo) -> list[SyncedEvent]:
        """The person's calendar now, as the sync stores it: every live event, read and classified by the
        bridge (``calendar_events`` once the last notification's sync ran)."""
        state = self.accounts[user_id].state
        with state.lock:
            resources = list(state.events.items())
        out = []
        for event_id, (revision, item) in resources:
            if item.get("status") == "cancelled":
                continue
            cached = self._synced.get(event_id)
            if cached is None or cached[0] != revision:
                cached = (revision, synced_event(item, tz))
                self._synced[event_id] = cached
            if cached[1] is not None:
                out.append(cached[1])
        return out

    def live_events(self) -> dict[str, Truth]:
        return {e: t for e, t in self.truth.items() if e not in self.cancelled}


def link(sync_url: str, secret_key: str, world: CalendarWorld) -> None:
    """Store, for every person in ``world``, a Google connection (tokens encrypted with the stack's key), its
    primary calendar and a live push channel (token kept as its hash), as ``calendar.setup_connection``
    would after consent."""
    from app.core.db import task_session
    from app.models import DeviceConnection, GoogleCalendar, GoogleChannel
    from bridges.connections import TokenSet, cipher_for, write_tokens

    cipher = cipher_for(secret_key)
    now = datetime.now(UTC)
    # Valid for the whole run: the calendar's sync is under test here, not token refreshes.
    expires = now + timedelta(days=1)
    with task_session(sync_url) as session:
        for user_id, account in world.accounts.items():
            connection = DeviceConnection(
                user_id=user_id, provider="google", external_user_id=f"google-sim-{secrets.token_hex(8)}"
            )
            tokens = TokenSet(account.state.access_token, account.state.refresh_token, expires, "calendar")
            write_tokens(connection, tokens, cipher)
            session.add(connection)
            session.flush()
            calendar = GoogleCalendar(
                user_id=user_id,
                connection_id=connection.id,
                calendar_id=account.state.calendar_id,
                summary="Simulated",
                primary=True,
            )
            session.add(calendar)
            session.flush()
            session.add(
                GoogleChannel(
                    user_id=user_id,
                    calendar_row_id=calendar.id,
                    channel_id=account.channel_id,
                    resource_id=account.resource_id,
                    token_hash=token_hash(account.channel_token),
                    expiration=now + timedelta(days=7),
                )
            )


def calendar_books(world: CalendarWorld, exports: dict[uuid.UUID, dict[str, Any]]) -> dict[str, Any]:
    """Events put in (live and cancelled) against the rows the sync stored, and the classification accuracy:
    the bridge's action (``calendar_events.action``, null = not an action) against the truth, over the live
    events the sync stored."""
    live = world.live_events()
    stored: dict[str, dict[str, Any]] = {}
    calendars = []
    for user_id in world.accounts:
        tables = exports.get(user_id, {})
        for row in tables.get("calendar_events", []):
            stored[str(row["external_id"])] = row
        calendars += tables.get("google_calendars", [])
    missing = sorted(e for e in live if e not in stored)
    not_deleted = sorted(e for e in world.cancelled if e in stored)
    foreign = sorted(e for e in stored if e not in world.truth)
    pairs = [(t, stored[e].get("action")) for e, t in live.items() if e in stored]
    correct = [(None if t.action is None else t.action.value) == got for t, got in pairs]
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in ("accepted", "life"):
        hits = [ok for (t, _), ok in zip(pairs, correct, strict=True) if t.kind == kind]
        by_kind[kind] = {"n": len(hits), "accuracy": sum(hits) / len(hits) if hits else float("nan")}
    by_truth: dict[str, dict[str, Any]] = {}
    for (t, got), ok in zip(pairs, correct, strict=True):
        name = "not an action" if t.action is None else t.action.value
        row = by_truth.setdefault(name, {"n": 0, "correct": 0, "got": {}})
        row["n"] += 1
        row["correct"] += ok
        row["got"][str(got)] = row["got"].get(str(got), 0) + 1
    n = len(pairs)
    accuracy = sum(correct) / n if n else float("nan")
    # Wilson 95 % interval: the events are not independent (people repeat titles), so read it as a floor.
    interval = list(wilson_interval(sum(correct), n))
    return {
        "events_created": len(world.truth),
        "events_cancelled": len(world.cancelled),
        "events_live": len(live),
        "events_synced": len([e for e in live if e in stored]),
        "lost_calendar_events": len(missing),
        "cancelled_not_deleted": len(not_deleted),
        "foreign_events": len(foreign),
        "syncs_requested": sum(int(c.get("sync_requested") or 0) for c in calendars),
        "syncs_completed": sum(int(c.get("sync_completed") or 0) for c in calendars),
        "syncs_pending": sum(1 for c in calendars if c.get("sync_pending_since")),
        "classified_by": dict(Counter(str(stored[e].get("action_source")) for e in live if e in stored)),
        "accuracy": accuracy,
        "accuracy_95": interval,
        "accuracy_by_kind": by_kind,
        "accuracy_by_truth": dict(sorted(by_truth.items())),
        "examples": {"lost": missing[:5], "not_deleted": not_deleted[:5]},
    }


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Clamped to [0, 1] and exact at the ends: at 0 or n successes one bound *is* the observed rate, and the
    float arithmetic would otherwise put a perfect 1.0 just outside its own interval (0.9999999999999999)."""
    if n <= 0:
        return float("nan"), float("nan")
    rate = successes / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if successes == 0 else max(0.0, float(centre - half))
    high = 1.0 if successes == n else min(1.0, float(centre + half))
    return low, high
