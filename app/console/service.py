"""What the console shows and the few things it changes. Routes stay thin; nothing here commits.

Views are plain dataclasses the templates read; chart series are JSON-ready dicts (``console.js`` draws them
with Chart.js). Everything about a person is read through :class:`ConsoleRepository` with that person's id.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendar import service as calendar
from app.calendar.schemas import ActionCorrectionUpdate
from app.console.repository import ConsoleRepository, OpsConsoleRepository
from app.core.config import Settings
from app.core.errors import AppError, NotFoundError
from app.finetune import ops as finetune_ops
from app.finetune.schemas import AdapterRollbackPublic, FinetuneJobCreate
from app.models import Adapter, AdapterStatus, CalendarEvent, FinetuneJob, FinetuneStatus, MeterSnapshot, User
from app.models.base import utcnow
from app.models.signals import confidences_of
from app.webhooks import service as webhooks
from app.webhooks.schemas import WebhookEventPublic, WebhookStatus
from domain import ACTIONS, DAY_NAMES, METER_NAMES, METERS, Action, Response, Slot

HISTORY_DAYS = 30
RECENT_DAYS = 7
TOP_ACTIONS = 3

# Line colours on the white page: each has at least 4.5:1 contrast against #ffffff (WCAG asks 3:1 for
# graphics, 1.4.11), and they differ in hue enough to tell apart; the browser test measures them.
METER_COLOURS: dict[str, str] = dict(
    zip(METER_NAMES, ("#b91c1c", "#1d4ed8", "#047857", "#7e22ce", "#b45309"), strict=True)
)
ACCEPTANCE_COLOUR = "#0f766e"


class ConsoleConflict(Exception):
    """The action cannot be done in the current state; ``notice`` names the message shown on the page."""

    def __init__(self, notice: str) -> None:
        super().__init__(notice)
        self.notice = notice


class ConsoleNotFound(Exception):
    """Unknown, or not the caller's: the console answers its 404 page."""


@dataclass(frozen=True, slots=True)
class GridCell:
    action: str | None = None
    response: str | None = None


@dataclass(frozen=True, slots=True)
class SlotBelief:
    slot: str
    now: list[tuple[str, float]]
    before: list[tuple[str, float]]
    n_now: int
    n_before: int


@dataclass(frozen=True, slots=True)
class MeterProvenance:
    """One meter of the latest snapshot: its value (None: missing), the engine's confidence, and the inputs
    it was computed from as short phrases ("sleep_duration from oura, 5 h old")."""

    meter: str
    value: float | None
    confidence: float | None
    inputs: list[str]


@dataclass(slots=True)
class PersonView:
    user: User
    since: datetime
    meter_chart: dict[str, Any]
    latest_meters: list[tuple[str, float | None]]
    provenance: list[tuple[str, int]]
    latest_source: str | None
    latest_engine: str | None
    latest_provenance: list[MeterProvenance]
    snapshot_count: int
    grid_days: list[str]
    grid: list[tuple[str, list[GridCell]]]
    week_count: int
    acceptance_chart: dict[str, Any]
    responded: int
    accepted: int
    beliefs: list[SlotBelief]
    # policy.evidence's log on the newest recommendation: how much the person's answers weighed there.
    latest_evidence: dict[str, Any] | None
    events: Sequence[CalendarEvent]
    devices: list[dict[str, Any]]
    active_adapter: Adapter | None
    adapters: Sequence[Adapter]
    finetune_jobs: Sequence[FinetuneJob]
    actions: tuple[Action, ...] = ACTIONS


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone)


def _zone(user: User) -> ZoneInfo:
    try:
        return ZoneInfo(user.timezone)
    except (KeyError, ValueError):  # the API validates zones; a stale one must not break the page
        return ZoneInfo("UTC")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _age(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return ""
    hours = seconds / 3600
    return f", {hours:.0f} h old" if hours < 48 else f", {hours / 24:.0f} days old"


def _inputs_of(provenance: Any, meter: str) -> list[str]:
    """The inputs the engine recorded for ``meter``, read defensively (other writers, older rows)."""
    meters = provenance.get("meters") if isinstance(provenance, dict) else None
    entry = meters.get(meter) if isinstance(meters, dict) else None
    inputs = entry.get("inputs") if isinstance(entry, dict) else None
    if not isinstance(inputs, list):
        return []
    phrases = []
    for item in inputs:
        if isinstance(item, dict) and item.get("kind"):
            source = f" from {item['source']}" if item.get("source") else ""
            phrases.append(f"{item['kind']}{source}{_age(item.get('age_s'))}")
    return phrases


def meter_provenance(snapshot: MeterSnapshot | None) -> list[MeterProvenance]:
    if snapshot is None:
        return []
    confidences = confidences_of(snapshot)
    return [
        MeterProvenance(
            meter=meter.label,
            value=_rounded(getattr(snapshot, meter.value)),
            confidence=_rounded(confidence),
            inputs=_inputs_of(snapshot.provenance, meter.value),
        )
        for meter, confidence in zip(METERS, confidences, strict=True)
    ]


def _top(sums: list[float], count: int, k: int = TOP_ACTIONS) -> list[tuple[str, float]]:
    if count == 0:
        return []
    means = [(ACTIONS[i].value, total / count) for i, total in enumerate(sums)]
    return sorted(means, key=lambda item: item[1], reverse=True)[:k]


async def person_view(session: AsyncSession, user: User, now: datetime | None = None) -> PersonView:
    """Everything the person page shows for ``user`` over the last 30 days."""
    now = now or utcnow()
    zone = _zone(user)
    since = now - timedelta(days=HISTORY_DAYS)
    recent = now - timedelta(days=RECENT_DAYS)
    repo = ConsoleRepository(session)

    snapshots = await repo.meter_snapshots(user.id, since)
    meter_chart = {
        "labels": [_local(row.taken_at, zone).strftime("%Y-%m-%d %H:%M") for row in snapshots],
        "datasets": [
            {
                "label": meter.label,
                # A NULL meter is missing (no fresh input), not zero: null leaves a gap in the line.
                "data": [_rounded(getattr(row, meter.value)) for row in snapshots],
                "color": METER_COLOURS[meter.value],
            }
            for meter in METERS
        ],
    }
    latest = snapshots[-1] if snapshots else None
    latest_meters = [(m.label, _rounded(getattr(latest, m.value))) for m in METERS] if latest else []
    provenance = Counter(row.source for row in snapshots).most_common()
    newest = await repo.latest_meter_snapshot(user.id, since) if snapshots else None

    recommendations = await repo.recommendations(user.id, since)
    # Week grid: the latest recommendation of each (local day, slot) in the last 7 days.
    cells: dict[tuple[int, int], GridCell] = {}
    daily: dict[date, list[int]] = defaultdict(lambda: [0, 0])  # local date → [accepted, responded]
    sums_now: dict[int, list[float]] = defaultdict(lambda: [0.0] * len(ACTIONS))
    sums_before: dict[int, list[float]] = defaultdict(lambda: [0.0] * len(ACTIONS))
    n_now: Counter[int] = Counter()
    n_before: Counter[int] = Counter()
    accepted = responded = 0
    for row in recommendations:
        response = Response(row.response) if row.response is not None else None
        if row.at >= recent:
            cells[(row.day, row.slot)] = GridCell(action=str(row.action), response=response)
        if response is not None:
            counts = daily[_local(row.at, zone).date()]
            counts[1] += 1
            responded += 1
            if response is Response.ACCEPTED:
                counts[0] += 1
                accepted += 1
        probabilities = row.probabilities
        if isinstance(probabilities, list) and len(probabilities) == len(ACTIONS):
            target, counter = (sums_now, n_now) if row.at >= recent else (sums_before, n_before)
            totals = target[row.slot]
            for i, p in enumerate(probabilities):
                totals[i] += float(p)
            counter[row.slot] += 1
    grid = [
        (slot.label, [cells.get((day, int(slot)), GridCell()) for day in range(len(DAY_NAMES))])
        for slot in Slot
    ]
    days = sorted(daily)
    acceptance_chart = {
        "labels": [day.isoformat() for day in days],
        "datasets": [
            {
                "label": "Accepted share",
                "data": [round(daily[day][0] / daily[day][1], 3) for day in days],
                "color": ACCEPTANCE_COLOUR,
            }
        ],
    }
    beliefs = [
        SlotBelief(
            slot=slot.label,
            now=_top(sums_now[int(slot)], n_now[int(slot)]),
            before=_top(sums_before[int(slot)], n_before[int(slot)]),
            n_now=n_now[int(slot)],
            n_before=n_before[int(slot)],
        )
        for slot in Slot
    ]

    adapters = await repo.adapters(user.id)
    return PersonView(
        user=user,
        since=since,
        meter_chart=meter_chart,
        latest_meters=latest_meters,
        provenance=provenance,
        latest_source=newest.source if newest is not None else None,
        latest_engine=newest.engine_version if newest is not None else None,
        latest_provenance=meter_provenance(newest),
        snapshot_count=len(snapshots),
        grid_days=list(DAY_NAMES),
        grid=grid,
        week_count=len(cells),
        acceptance_chart=acceptance_chart,
        responded=responded,
        accepted=accepted,
        beliefs=beliefs,
        latest_evidence=next(
            (row.evidence for row in reversed(recommendations) if isinstance(row.evidence, dict)), None
        ),
        events=await repo.calendar_events(user.id, now - timedelta(days=RECENT_DAYS)),
        devices=[dict(row._mapping) for row in await repo.devices(user.id)],
        active_adapter=next((a for a in adapters if a.status is AdapterStatus.ACTIVE), None),
        adapters=adapters,
        finetune_jobs=await repo.finetune_jobs_of(user.id),
    )


async def visible_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await ConsoleRepository(session).get_user(user_id)
    if user is None:
        raise ConsoleNotFound
    return user


async def correct_event_action(
    session: AsyncSession, user_id: uuid.UUID, event_id: uuid.UUID, action: Action | None
) -> None:
    """Set the action a calendar event amounts to (None: not an action), as the person corrected it.

    The calendar's own correction service does the work, so a correction from the console is remembered for
    the recurring series and identical titles exactly like one through the API.
    """
    user = await ConsoleRepository(session).get_user(user_id)
    if user is None:
        raise ConsoleNotFound
    try:
        await calendar.correct_action(session, user, event_id, ActionCorrectionUpdate(action=action))
    except NotFoundError:
        raise ConsoleNotFound from None


async def start_finetune_job(session: AsyncSession, settings: Settings, user_id: uuid.UUID) -> uuid.UUID:
    """Queue the user's fine-tune job of this ISO week through the fine-tune service (sent to the workers
    after the commit); returns the job id.

    A job already queued or running is reported as a conflict rather than silently returned, so ops see why
    nothing new started.
    """
    repo = ConsoleRepository(session)
    if await repo.get_user(user_id) is None:
        raise ConsoleNotFound
    if await repo.open_finetune_job(user_id) is not None:
        raise ConsoleConflict("job_already_open")
    queued = await finetune_ops.queue_jobs(session, settings, FinetuneJobCreate(user_id=user_id))
    return queued.job_ids[0]


async def rollback_adapter(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, expected: uuid.UUID | None = None
) -> AdapterRollbackPublic:
    """Roll the user's adapter back through the fine-tune service: the previous version, or the base;
    ``expected`` is the active adapter the page showed (a second submission of the form changes nothing)."""
    try:
        return await finetune_ops.rollback(session, settings, user_id, expected=expected)
    except NotFoundError:
        raise ConsoleNotFound from None
    except AppError as exc:
        raise ConsoleConflict(exc.code) from None


@dataclass(slots=True)
class PolicyHealth:
    backend: str | None
    breaker: str | None
    served: float
    fallbacks: float
    db_counts: dict[str, int] = field(default_factory=dict)

    @property
    def fallback_share(self) -> float | None:
        return self.fallbacks / self.served if self.served else None

    @property
    def db_fallback_share(self) -> float | None:
        total = sum(self.db_counts.values())
        return self.db_counts.get("fallback", 0) / total if total else None


@dataclass(slots=True)
class OpsView:
    status: FinetuneStatus | None
    statuses: tuple[FinetuneStatus, ...]
    jobs: Sequence[FinetuneJob]
    adapters_by_user: dict[uuid.UUID, list[Adapter]]
    users: Sequence[User]
    failed_events: list[WebhookEventPublic]
    pending_events: list[WebhookEventPublic]
    health: PolicyHealth


def _metric_total(registry: CollectorRegistry | None, name: str) -> float:
    if registry is None:
        return 0.0
    total = 0.0
    for metric in registry.collect():
        if metric.name == name:
            total += sum(sample.value for sample in metric.samples if sample.name == f"{name}_total")
    return total


def policy_health(policy: Any, registry: CollectorRegistry | None, db_counts: dict[str, int]) -> PolicyHealth:
    """Breaker state and fallback share of this API process (metrics), and the share over the database."""
    backend = getattr(getattr(policy, "primary", None), "name", None)
    breaker = getattr(policy, "breaker", None)
    state = breaker.state.name.lower().replace("_", "-") if breaker is not None else None
    return PolicyHealth(
        backend=backend,
        breaker=state,
        served=_metric_total(registry, "rhythm_recommendations"),
        fallbacks=_metric_total(registry, "rhythm_policy_fallbacks"),
        db_counts=db_counts,
    )


async def ops_view(
    session: AsyncSession,
    status: FinetuneStatus | None,
    *,
    policy: Any,
    registry: CollectorRegistry | None,
    now: datetime | None = None,
) -> OpsView:
    now = now or utcnow()
    repo = OpsConsoleRepository(session)
    by_user: dict[uuid.UUID, list[Adapter]] = defaultdict(list)
    for adapter in await repo.adapters():
        by_user[adapter.user_id].append(adapter)
    failed = await webhooks.list_events(
        session, status=WebhookStatus.FAILED, source=None, limit=50, cursor=None
    )
    pending = await webhooks.list_events(
        session, status=WebhookStatus.PENDING, source=None, limit=50, cursor=None
    )
    counts = await repo.backend_counts(now - timedelta(hours=24))
    return OpsView(
        status=status,
        statuses=tuple(FinetuneStatus),
        jobs=await repo.finetune_jobs(status),
        adapters_by_user=dict(by_user),
        users=await repo.users(),
        failed_events=failed.items,
        pending_events=pending.items,
        health=policy_health(policy, registry, counts),
    )


async def replay_event(session: AsyncSession, settings: Settings, event_id: uuid.UUID) -> WebhookEventPublic:
    """Replay through the inbox's own service (enqueued after the request's commit)."""
    return await webhooks.replay(session, settings, event_id)
