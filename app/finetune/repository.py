"""All SQL of fine-tune jobs and adapters. Reads of a user's data are filtered by that user.

The job's state machine lives in conditional UPDATEs, so two workers (or a worker and the sweeper) can never
both own a job: :meth:`JobStore.claim` takes a queued job, or a running one whose lease expired; every later
write of the run (:meth:`JobStore.renew`, :meth:`JobStore.finish`) is conditional on still holding the lease,
so a worker that lost it (it was presumed dead and the job ran again) writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.models import Adapter, AdapterStatus, Feedback, FinetuneJob, FinetuneStatus, Recommendation, User
from app.models.base import meter_columns, meter_values_of
from domain import Meters
from policy.prompt import shown_meters

TERMINAL = (FinetuneStatus.SUCCEEDED, FinetuneStatus.FAILED, FinetuneStatus.SKIPPED, FinetuneStatus.CANCELLED)


@dataclass(frozen=True)
class LoggedRow:
    """One logged recommendation of the user with its answer (if any), as a fine-tune reads it."""

    id: uuid.UUID
    at: datetime
    created_at: datetime
    day: int
    slot: int
    meters: Meters
    action: str
    probabilities: list[float]
    propensity: float
    adapter: str | None
    prompt_hash: str | None
    renderer_version: int | None
    response: str | None
    answered_at: datetime | None
    # policy.evidence's log of the combination this decision was served with (None before revision 0011).
    evidence: dict[str, Any] | None = None


class JobStore:
    """The worker's (synchronous) side: claim, heartbeat, finish, sweep."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, job_id: uuid.UUID) -> FinetuneJob | None:
        return self.session.get(FinetuneJob, job_id)

    def user(self, user_id: uuid.UUID) -> User | None:
        return self.session.get(User, user_id)

    def create(
        self, user_id: uuid.UUID, iso_week: str, now: datetime, **values: Any
    ) -> tuple[FinetuneJob, bool]:
        """The user's job of ``iso_week``, created queued if there is none (the unique constraint decides a
        race); ``True`` when this call created it."""
        job = FinetuneJob(
            user_id=user_id, iso_week=iso_week, status=FinetuneStatus.QUEUED, enqueued_at=now, **values
        )
        try:
            with self.session.begin_nested():
                self.session.add(job)
                self.session.flush()
            return job, True
        except IntegrityError:
            existing = self.session.scalars(
                select(FinetuneJob).where(FinetuneJob.user_id == user_id, FinetuneJob.iso_week == iso_week)
            ).one()
            return existing, False

    def claim(self, job_id: uuid.UUID, owner: str, now: datetime, lease: timedelta) -> FinetuneJob | None:
        claimable = or_(
            FinetuneJob.status == FinetuneStatus.QUEUED,
            and_(FinetuneJob.status == FinetuneStatus.RUNNING, FinetuneJob.lease_expires_at < now),
        )
        statement = (
            update(FinetuneJob)
            .where(FinetuneJob.id == job_id, claimable, FinetuneJob.attempt < FinetuneJob.max_attempts)
            .values(
                status=FinetuneStatus.RUNNING,
                attempt=FinetuneJob.attempt + 1,
                lease_owner=owner,
                lease_expires_at=now + lease,
                heartbeat_at=now,
                started_at=func.coalesce(FinetuneJob.started_at, now),
            )
            .returning(FinetuneJob.id)
        )
        if self.session.execute(statement).scalar_one_or_none() is None:
            return None
        job = self.session.get(FinetuneJob, job_id, populate_existing=True)
        return job

    def renew(self, job_id: uuid.UUID, owner: str, now: datetime, lease: timedelta) -> bool:
        statement = (
            update(FinetuneJob)
            .where(*self._held(job_id, owner))
            .values(heartbeat_at=now, lease_expires_at=now + lease)
            .returning(FinetuneJob.id)
        )
        return self.session.execute(statement).scalar_one_or_none() is not None

    def finish(self, job_id: uuid.UUID, owner: str, now: datetime, **values: Any) -> bool:
        """End the run (any terminal status or back to queued for a retry) if ``owner`` still holds it."""
        statement = (
            update(FinetuneJob)
            .where(*self._held(job_id, owner))
            .values(**({"finished_at": now, "lease_owner": None, "lease_expires_at": None} | values))
            .returning(FinetuneJob.id)
        )
        return self.session.execute(statement).scalar_one_or_none() is not None

    @staticmethod
    def _held(job_id: uuid.UUID, owner: str) -> tuple[Any, ...]:
        return (
            FinetuneJob.id == job_id,
            FinetuneJob.status == FinetuneStatus.RUNNING,
            FinetuneJob.lease_owner == owner,
        )

    def expire_leases(self, now: datetime) -> tuple[list[uuid.UUID], int]:
        """Running jobs whose lease expired: queued again (ids returned to send), or failed when they have
        used their attempts (count returned)."""
        expired = (FinetuneJob.status == FinetuneStatus.RUNNING, FinetuneJob.lease_expires_at < now)
        failed = self.session.execute(
            update(FinetuneJob)
            .where(*expired, FinetuneJob.attempt >= FinetuneJob.max_attempts)
            .values(
                status=FinetuneStatus.FAILED,
                finished_at=now,
                lease_owner=None,
                lease_expires_at=None,
                error="the worker stopped renewing its lease on every attempt",
            )
            .returning(FinetuneJob.id)
        ).all()
        requeued = self.session.execute(
            update(FinetuneJob)
            .where(*expired)
            .values(status=FinetuneStatus.QUEUED, lease_owner=None, lease_expires_at=None, enqueued_at=now)
            .returning(FinetuneJob.id)
        ).scalars()
        return list(requeued), len(failed)

    def resend_queued(self, older_than: datetime, now: datetime) -> list[uuid.UUID]:
        """Queued jobs handed to the broker before ``older_than`` and never started: a lost message."""
        statement = (
            update(FinetuneJob)
            .where(FinetuneJob.status == FinetuneStatus.QUEUED, FinetuneJob.enqueued_at < older_than)
            .values(enqueued_at=now)
            .returning(FinetuneJob.id)
        )
        return list(self.session.execute(statement).scalars())

    def week_gate_stats(self, iso_week: str, base_model: str, exclude: uuid.UUID) -> list[dict[str, Any]]:
        """The per-user gate sums of the week's other jobs (same base model) that reached the gate."""
        statement = select(FinetuneJob.gate).where(
            FinetuneJob.iso_week == iso_week,
            FinetuneJob.base_model == base_model,
            FinetuneJob.id != exclude,
            FinetuneJob.gate.is_not(None),
        )
        return [gate["stats"] for gate in self.session.scalars(statement) if gate and gate.get("stats")]

    def logged_rows(self, user_id: uuid.UUID) -> list[LoggedRow]:
        """Every recommendation of the user with its answer (if any), oldest first."""
        statement = (
            select(
                Recommendation.id,
                Recommendation.at,
                Recommendation.created_at,
                Recommendation.day,
                Recommendation.slot,
                *meter_columns(Recommendation),
                Recommendation.action,
                Recommendation.probabilities,
                Recommendation.propensity,
                Recommendation.adapter,
                Recommendation.prompt_hash,
                Recommendation.renderer_version,
                Feedback.response,
                Feedback.created_at.label("answered_at"),
                Recommendation.evidence,
            )
            .outerjoin(
                Feedback, and_(Feedback.recommendation_id == Recommendation.id, Feedback.user_id == user_id)
            )
            .where(Recommendation.user_id == user_id)
            .order_by(Recommendation.at, Recommendation.created_at)
        )
        rows = []
        for row in self.session.execute(statement):
            rows.append(
                LoggedRow(
                    row.id,
                    row.at,
                    row.created_at,
                    row.day,
                    row.slot,
                    # A meter the snapshot lacked is NULL in the row: read as the service rendered it when it
                    # served the row (policy.prompt.shown_meters), or the re-rendered prompt would not match.
                    shown_meters(meter_values_of(row)),
                    str(row.action.value if hasattr(row.action, "value") else row.action),
                    list(row.probabilities),
                    float(row.propensity),
                    row.adapter,
                    row.prompt_hash,
                    row.renderer_version,
                    None if row.response is None else str(getattr(row.response, "value", row.response)),
                    row.answered_at,
                    row.evidence,
                )
            )
        return rows

    def eligible_users(self, since: datetime | None, min_answered: int) -> list[uuid.UUID]:
        """Users with at least ``min_answered`` answers (and, with ``since``, one answered since then)."""
        statement = (
            select(Recommendation.user_id)
            .join(Feedback, Feedback.recommendation_id == Recommendation.id)
            .group_by(Recommendation.user_id)
            .having(func.count() >= min_answered)
        )
        if since is not None:
            statement = statement.having(func.max(Recommendation.at) >= since)
        return list(self.session.scalars(statement))

    # Adapters --------------------------------------------------------------------------------------------

    def active_adapter(self, user_id: uuid.UUID) -> Adapter | None:
        return self.session.scalars(_active(user_id)).first()

    def add_adapter(self, adapter: Adapter) -> Adapter:
        self.session.add(adapter)
        self.session.flush()
        return adapter

    def activate(self, user_id: uuid.UUID, adapter_id: uuid.UUID) -> list[Adapter]:
        """Make ``adapter_id`` the user's one active adapter; the previously active ones are returned
        retired."""
        previous = list(
            self.session.scalars(
                select(Adapter).where(
                    Adapter.user_id == user_id,
                    Adapter.status == AdapterStatus.ACTIVE,
                    Adapter.id != adapter_id,
                )
            )
        )
        for adapter in previous:
            adapter.status = AdapterStatus.RETIRED
        self.session.execute(
            update(Adapter)
            .where(Adapter.id == adapter_id, Adapter.user_id == user_id)
            .values(status=AdapterStatus.ACTIVE)
        )
        return previous

    def all_active_adapters(self, base_model: str) -> Sequence[Adapter]:
        """Every user's active adapter of ``base_model`` (the reconciliation's list)."""
        statement = select(Adapter).where(
            Adapter.status == AdapterStatus.ACTIVE, Adapter.base_model == base_model
        )
        return self.session.scalars(statement).all()


def _active(user_id: uuid.UUID, base_model: str | None = None) -> Select[Adapter]:
    statement = select(Adapter).where(Adapter.user_id == user_id, Adapter.status == AdapterStatus.ACTIVE)
    if base_model is not None:
        statement = statement.where(Adapter.base_model == base_model)
    return statement.order_by(Adapter.version.desc())


class FinetuneRepository:
    """The ops API's (asynchronous) side."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def user_exists(self, user_id: uuid.UUID) -> bool:
        return await self.session.get(User, user_id) is not None

    async def hold_user(self, user_id: uuid.UUID) -> bool:
        """Key-share lock the user's row until the transaction ends (False: no such user). Taken before any
        row of theirs, as every path does (``app.core.races``), and so that a deletion cannot remove the user
        between this check and the insert of an idempotency key that references them."""
        statement = select(User.id).where(User.id == user_id).with_for_update(key_share=True)
        return (await self.session.execute(statement)).first() is not None

    async def get_job(self, job_id: uuid.UUID) -> FinetuneJob | None:
        return await self.session.get(FinetuneJob, job_id)

    async def list_jobs(
        self,
        *,
        status: FinetuneStatus | None,
        user_id: uuid.UUID | None,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> list[FinetuneJob]:
        statement = select(FinetuneJob)
        if status is not None:
            statement = statement.where(FinetuneJob.status == status)
        if user_id is not None:
            statement = statement.where(FinetuneJob.user_id == user_id)
        if before is not None:
            created, job_id = before
            statement = statement.where(
                or_(
                    FinetuneJob.created_at < created,
                    and_(FinetuneJob.created_at == created, FinetuneJob.id < job_id),
                )
            )
        statement = statement.order_by(FinetuneJob.created_at.desc(), FinetuneJob.id.desc()).limit(limit)
        return list((await self.session.scalars(statement)).all())

    async def adapters(self, user_id: uuid.UUID) -> list[Adapter]:
        statement = (
            select(Adapter)
            .where(Adapter.user_id == user_id)
            .order_by(Adapter.version.desc(), Adapter.created_at.desc())
        )
        return list((await self.session.scalars(statement)).all())
