"""Weekly per-user fine-tunes: creating jobs, running one (claim → data → train → gate → deploy), sweeping.

A job's life: ``queued`` → ``running`` (claimed with a lease that the run renews while it trains) →
``succeeded`` (an adapter was trained and gated; promoted or held back, see ``gate``), ``skipped`` (not
eligible, with the reason) or ``failed`` (after ``max_attempts``). A worker killed mid-run stops renewing;
the sweeper finds the expired lease and queues the job again; a run that lost its lease writes nothing, so
a job completes exactly once. Training happens outside any transaction (a minute of CPU must not hold a
database connection in a transaction); the run's writes are short conditional transactions.

The data: every answered recommendation becomes one example. Its prompt is re-rendered by the one renderer
from the history as it stood at that moment (rows answered before it was made), once with the window it was
served with, checked against the logged ``prompt_hash`` where the row carries the current renderer version
(a mismatch means the reconstruction is wrong: the row is left out and counted), and once with the adapter's
short window, which is what the adapter learns to read. The newest ``finetune_holdout_days`` days are held
out of training for the gate.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import task_session
from app.core.jobs import Job, enqueue
from app.core.tasks import RUN_FINETUNE_JOB
from app.finetune import deploy
from app.finetune.repository import JobStore, LoggedRow
from app.models import Adapter, AdapterStatus, FinetuneJob, FinetuneStatus
from app.models.base import utcnow
from app.recommend.repository import HISTORY_ROW_CAP
from app.recommend.sampling import sampling_distribution
from app.recommend.slots import local_slot, window_start, zone
from domain import ACTIONS, Action, Interaction, Response, Slot, SlotState
from policy.evidence import reapply
from policy.gate import GateResult, decide, on_policy_stats, snips_stats
from policy.paths import base_model_version
from policy.prompt import RENDERER_VERSION, render_prompt

log = structlog.get_logger(__name__)

__all__ = ["JobStore", "LeaseLost", "request_job", "run_job"]


class LeaseLost(Exception):
    """Another worker owns the job now (this one was presumed dead): stop and write nothing."""


def iso_week(now: datetime) -> tuple[str, int, int]:
    year, week, _ = now.isocalendar()
    return f"{year}-W{week:02d}", year, week


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# Jobs ------------------------------------------------------------------------------------------------------


def request_job(
    session: Session, settings: Settings, user_id: uuid.UUID, now: datetime, *, send: bool = True
) -> FinetuneJob:
    """The user's job of this ISO week: created and sent (after commit) if new; a failed one is queued again
    with fresh attempts; any other existing job is returned as it is (one per user and week). ``send=False``
    (``rhythm finetune``, which runs it in the foreground) leaves it unsent."""
    store = JobStore(session)
    week, _, _ = iso_week(now)
    job, created = store.create(
        user_id,
        week,
        now,
        max_attempts=settings.finetune_max_attempts,
        base_model=base_model_version(settings.model_dir),
    )
    if not created and job.status is FinetuneStatus.FAILED:
        job.status, job.attempt, job.error, job.enqueued_at = FinetuneStatus.QUEUED, 0, None, now
        job.finished_at = None
        created = True
    if created and send:
        enqueue(session, settings, Job(RUN_FINETUNE_JOB, (str(job.id),)))
    return job


def schedule_weekly(session: Session, settings: Settings, now: datetime) -> list[uuid.UUID]:
    """The weekly sweep: a job for every user with enough answers who answered in the last week."""
    users = JobStore(session).eligible_users(now - timedelta(days=7), settings.finetune_min_answered)
    return [request_job(session, settings, user_id, now).id for user_id in users]


def requeue_stale(session: Session, settings: Settings, now: datetime) -> int:
    """Expired leases → queued again (or failed after the last attempt); lost messages → sent again."""
    store = JobStore(session)
    requeued, failed = store.expire_leases(now)
    resent = store.resend_queued(now - settings.finetune_requeue_after, now)
    for job_id in [*requeued, *resent]:
        enqueue(session, settings, Job(RUN_FINETUNE_JOB, (str(job_id),)))
    if requeued or failed:
        log.warning("finetune_leases_expired", requeued=len(requeued), failed=failed)
    return len(requeued) + len(resent)


# Data ------------------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    train: list[Any] = field(default_factory=list)  # policy.finetune.Example
    holdout: list[Any] = field(default_factory=list)
    holdout_rows: list[LoggedRow] = field(default_factory=list)
    # The training rows' span (stored on the adapter row): the held-out days start after ``trained_to``.
    trained_from: datetime | None = None
    trained_to: datetime | None = None
    checked: int = 0
    mismatched: int = 0


def _interaction(row: LoggedRow) -> Interaction:
    assert row.response is not None
    state = SlotState(row.day, Slot(row.slot), row.meters)
    return Interaction(state, Action(row.action), Response(row.response))


def history_at(rows: list[LoggedRow], index: int, days: int, timezone: str) -> list[Interaction]:
    """The history the recommend path read for ``rows[index]`` with a ``days`` window: rows answered
    before it was made, in the window of whole slot days ending with its slot (as
    ``RecommendationRepository.history``)."""
    row, tz = rows[index], zone(timezone)
    start = window_start(local_slot(row.at, tz), days, tz)
    seen = [
        other
        for other in rows[:index]
        if other.response is not None
        and other.answered_at is not None
        and other.answered_at <= row.created_at
        and start <= other.at <= row.at
    ]
    return [_interaction(other) for other in seen[-HISTORY_ROW_CAP:]]


def build_dataset(rows: list[LoggedRow], timezone: str, settings: Settings) -> Dataset:
    from policy.finetune import Example

    answered = [i for i, row in enumerate(rows) if row.response is not None]
    data = Dataset()
    if not answered:
        return data
    cutoff = rows[answered[-1]].at - timedelta(days=settings.finetune_holdout_days)
    data.trained_to = cutoff
    short, long = settings.adapter_history_days, settings.history_days
    for index in answered:
        row = rows[index]
        current = SlotState(row.day, Slot(row.slot), row.meters)
        short_prompt = render_prompt(history_at(rows, index, short, timezone), current, window_days=short)
        long_prompt = render_prompt(history_at(rows, index, long, timezone), current, window_days=long)
        if row.renderer_version == RENDERER_VERSION and row.prompt_hash is not None:
            served = short_prompt if row.adapter is not None else long_prompt
            data.checked += 1
            if hashlib.sha256(served.encode()).hexdigest() != row.prompt_hash:
                data.mismatched += 1
                continue
        example = Example(
            prompt=short_prompt,
            teacher_prompt=long_prompt,
            action=ACTIONS.index(Action(row.action)),
            accepted=row.response == Response.ACCEPTED.value,
            propensity=row.propensity,
        )
        if row.at > cutoff:
            data.holdout.append(example)
            data.holdout_rows.append(row)
        else:
            data.train.append(example)
            if data.trained_from is None:
                data.trained_from = row.at
    return data


def ineligible_reason(rows: list[LoggedRow], settings: Settings) -> str | None:
    answered = [row for row in rows if row.response is not None]
    if len(answered) < settings.finetune_min_answered:
        return f"{len(answered)} answered recommendations; at least {settings.finetune_min_answered} needed"
    span = answered[-1].at - answered[0].at
    if span < timedelta(days=settings.finetune_min_history_days):
        return (
            f"{span.total_seconds() / 86400:.1f} days of history; "
            f"at least {settings.finetune_min_history_days} needed"
        )
    return None


# Running one job -------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    status: str
    job_id: uuid.UUID
    adapter: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def run_job(
    settings: Settings,
    job_id: uuid.UUID,
    *,
    owner: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Claim and run one job to its end; idempotent (a job that is not claimable is left alone)."""
    from policy.finetune import FinetuneConfig, distributions, finetune, load_adapter_model, load_base

    owner = owner or worker_id()
    url = settings.sync_database_url
    lease = settings.finetune_lease
    with task_session(url) as session:
        store = JobStore(session)
        job = store.claim(job_id, owner, utcnow(), lease)
        if job is None:
            return RunOutcome("not_claimed", job_id)
        user = store.user(job.user_id)
        assert user is not None  # the job row cascades with its user
        user_id, timezone, week, attempt = user.id, user.timezone, job.iso_week, job.attempt
        rows = store.logged_rows(user_id)
    log.info("finetune_job_started", job_id=str(job_id), user_id=str(user_id), attempt=attempt, week=week)

    def finish(**values: Any) -> None:
        with task_session(url) as session:
            if not JobStore(session).finish(job_id, owner, utcnow(), **values):
                raise LeaseLost(str(job_id))

    reason = ineligible_reason(rows, settings)
    data = build_dataset(rows, timezone, settings) if reason is None else Dataset()
    if reason is None and not data.train:
        reason = "no answered recommendation before the held-out days"
    if reason is None and not data.holdout:
        reason = "no answered recommendation in the held-out days for the gate"
    if reason is not None:
        finish(status=FinetuneStatus.SKIPPED, reason=reason)
        log.info("finetune_job_skipped", job_id=str(job_id), reason=reason)
        return RunOutcome("skipped", job_id, detail={"reason": reason})

    config = FinetuneConfig(
        rank=settings.finetune_rank,
        epochs=settings.finetune_epochs,
        seed=settings.finetune_seed,
        max_lora_rank=settings.vllm_max_lora_rank,
    )
    year, week_number = int(week[:4]), int(week[-2:])
    out_dir = deploy.adapter_folder(settings, user_id, year, week_number)
    name = deploy.adapter_name(user_id, year, week_number)
    beat = _Heartbeat(settings, job_id, owner)

    def progress(done: int, total: int) -> None:
        beat.maybe_renew()
        if on_progress is not None:
            on_progress(done, total)

    result = finetune(data.train, out_dir, config, model_dir=settings.model_dir, on_step=progress)
    beat.maybe_renew(force=True)

    _, tokenizer = load_base(settings.model_dir)
    adapter_model = load_adapter_model(out_dir, settings.model_dir)
    raw = distributions(adapter_model, tokenizer, [example.prompt for example in data.holdout])
    # What the service would have sampled from with this adapter on each held-out decision: its distribution
    # combined with the person's answers exactly as logged then (policy.evidence), then temperature and floor.
    served = np.stack(
        [
            sampling_distribution(
                reapply(probs, row.evidence), (), settings.temperature, settings.exploration_floor
            )
            for probs, row in zip(raw, data.holdout_rows, strict=True)
        ]
    )
    actions = [example.action for example in data.holdout]
    rewards = [1.0 if example.accepted else 0.0 for example in data.holdout]
    base_model = base_model_version(settings.model_dir)
    with task_session(url) as session:
        pool = JobStore(session).week_gate_stats(week, base_model, job_id)
    gate = decide(
        snips_stats(served, actions, [example.propensity for example in data.holdout], rewards),
        on_policy_stats(rewards),
        margin=settings.finetune_gate_margin,
        min_ess=settings.finetune_gate_min_ess,
        z=settings.finetune_gate_z,
        max_halfwidth=settings.finetune_gate_max_halfwidth,
        pool=pool,
    )
    metrics = {
        **result.metrics,
        "holdout_examples": len(data.holdout),
        "prompts_checked": data.checked,
        "prompts_mismatched": data.mismatched,
    }
    if gate.promote and deploy.uses_vllm(settings):
        deploy.load(settings, name, str(out_dir))  # before the pointer moves; raises → retried
    previous = _complete(
        settings, job_id, owner, user_id, gate, metrics, config, name, out_dir, base_model, data
    )
    if deploy.uses_vllm(settings):
        for old in previous:
            deploy.unload(settings, old)
    log.info(
        "finetune_job_succeeded",
        job_id=str(job_id),
        decision=gate.decision.value,
        seconds=result.metrics["train_seconds"],
    )
    return RunOutcome("succeeded", job_id, adapter=name if gate.promote else None, detail=gate.as_dict())


def _complete(
    settings: Settings,
    job_id: uuid.UUID,
    owner: str,
    user_id: uuid.UUID,
    gate: GateResult,
    metrics: dict[str, Any],
    config: Any,
    name: str,
    out_dir: Path,
    base_model: str,
    data: Dataset,
) -> list[str]:
    """One transaction: the job's result (if this run still holds it), the adapter row, and — when promoted —
    the user's pointer. Returns the names of the adapters it retired."""
    with task_session(settings.sync_database_url) as session:
        store = JobStore(session)
        adapter = store.add_adapter(
            Adapter(
                user_id=user_id,
                name=name,
                version=int(name[-6:]),  # YYYYWW
                base_model=base_model,
                uri=str(out_dir),
                status=AdapterStatus.READY,
                n_interactions=int(metrics["examples"]),
                trained_from=data.trained_from,
                trained_to=data.trained_to,
                metrics={**metrics, "gate": gate.decision.value},
            )
        )
        done = store.finish(
            job_id,
            owner,
            utcnow(),
            status=FinetuneStatus.SUCCEEDED,
            adapter_id=adapter.id,
            adapter_uri=str(out_dir),
            params=config.as_dict(),
            metrics=metrics,
            gate=gate.as_dict(),
            reason=None if gate.promote else f"gate: {gate.decision.value}",
            error=None,
        )
        if not done:
            raise LeaseLost(str(job_id))  # rolls back the adapter row too
        if not gate.promote:
            return []
        return [old.name for old in store.activate(user_id, adapter.id)]


class _Heartbeat:
    """Renews the run's lease at most every ``finetune_heartbeat_interval`` (called between steps)."""

    def __init__(self, settings: Settings, job_id: uuid.UUID, owner: str) -> None:
        self.settings, self.job_id, self.owner = settings, job_id, owner
        self.last = time.monotonic()

    def maybe_renew(self, *, force: bool = False) -> None:
        interval = self.settings.finetune_heartbeat_interval.total_seconds()
        if not force and time.monotonic() - self.last < interval:
            return
        with task_session(self.settings.sync_database_url) as session:
            renewed = JobStore(session).renew(self.job_id, self.owner, utcnow(), self.settings.finetune_lease)
        if not renewed:
            raise LeaseLost(str(self.job_id))
        self.last = time.monotonic()


def record_failure(settings: Settings, job_id: uuid.UUID, owner: str, exc: BaseException) -> int | None:
    """After an error: queued again while attempts remain, else failed. Returns the attempts used (None if
    this run no longer holds the job)."""
    with task_session(settings.sync_database_url) as session:
        store = JobStore(session)
        job = store.get(job_id)
        if job is None:
            return None
        attempts, last = job.attempt, job.attempt >= job.max_attempts
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
        values: dict[str, Any] = {"status": FinetuneStatus.FAILED if last else FinetuneStatus.QUEUED}
        if not last:
            values |= {"finished_at": None, "enqueued_at": utcnow()}
        if not store.finish(job_id, owner, utcnow(), error=error, **values):
            return None
        return attempts


# vLLM reconciliation ---------------------------------------------------------------------------------------


def reconcile(session: Session, settings: Settings) -> dict[str, int]:
    """Load every active adapter (of the current base model) that vLLM does not list; unload listed adapters
    of ours that no user points at."""
    if not deploy.uses_vllm(settings):
        return {"loaded": 0, "unloaded": 0}
    base_model = base_model_version(settings.model_dir)
    active = {adapter.name: adapter for adapter in JobStore(session).all_active_adapters(base_model)}
    served = deploy.listed(settings)
    loaded = 0
    for name, adapter in active.items():
        if name not in served:
            deploy.load(settings, name, adapter.uri)
            loaded += 1
    stale = [name for name in served if deploy.ADAPTER_NAME.match(name) and name not in active]
    for name in stale:
        deploy.unload(settings, name)
    if loaded or stale:
        log.info("adapters_reconciled", loaded=loaded, unloaded=len(stale))
    return {"loaded": loaded, "unloaded": len(stale)}


def purge_user_adapters(settings: Settings, user_id: uuid.UUID) -> int:
    """Remove a deleted user's adapter folders (and unload their names from vLLM); returns folders removed."""
    import shutil

    root = deploy.user_adapter_root(settings, user_id)
    if deploy.uses_vllm(settings):
        try:
            names = [name for name in deploy.listed(settings) if name.startswith(f"u{user_id.hex}-w")]
        except deploy.DeployError:
            names = []  # the next reconciliation unloads names no user points at
        for name in names:
            deploy.unload(settings, name)
    if not root.is_dir():
        return 0
    count = sum(1 for _ in root.iterdir())
    shutil.rmtree(root)
    log.info("user_adapters_purged", user_id=str(user_id), folders=count)
    return count
