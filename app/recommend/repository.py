"""All SQL of the recommend path. Every statement is filtered by the calling user."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Adapter, AdapterStatus, Feedback, MeterSnapshot, Recommendation
from app.models.base import meter_columns, meter_values_of
from app.models.signals import CONFIDENCE_COLUMNS, confidences_of
from domain import Interaction, Response, Slot, SlotState
from policy.evidence import WEEKEND_DAYS, Evidence
from policy.prompt import DEFAULT_MAX_INTERACTIONS, shown_meters

# Rows read for the history. The prompt keeps at most DEFAULT_MAX_INTERACTIONS and drops the oldest in whole
# blocks; reading twice that (two answered recommendations per slot for 30 days) keeps the drop point stable.
HISTORY_ROW_CAP = 2 * DEFAULT_MAX_INTERACTIONS
_SLOTS = tuple(Slot)  # by stored slot number


@dataclass(frozen=True, slots=True)
class SnapshotMeters:
    """The latest snapshot's meters (``None`` = missing) and confidences (``None`` = not recorded)."""

    taken_at: datetime
    values: tuple[float | None, ...]
    confidences: tuple[float | None, ...]


def _answered_between(user_id: uuid.UUID, start: datetime, end: datetime) -> tuple[ColumnElement[bool], ...]:
    """The user's answered recommendations with ``start <= at <= end`` (both tables scoped by the user)."""
    return (
        Recommendation.user_id == user_id,
        Feedback.user_id == user_id,
        Recommendation.at >= start,
        Recommendation.at <= end,
    )


class RecommendationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def latest_meters(self, user_id: uuid.UUID, at: datetime) -> SnapshotMeters | None:
        """The user's most recent meter snapshot taken at or before ``at``."""
        statement = (
            select(
                MeterSnapshot.taken_at,
                *meter_columns(MeterSnapshot),
                *(getattr(MeterSnapshot, column) for column in CONFIDENCE_COLUMNS),
            )
            .where(MeterSnapshot.user_id == user_id, MeterSnapshot.taken_at <= at)
            .order_by(MeterSnapshot.taken_at.desc())
            .limit(1)
        )
        row = (await self.session.execute(statement)).first()
        if row is None:
            return None
        return SnapshotMeters(row.taken_at, meter_values_of(row), confidences_of(row))

    async def active_adapter(self, user_id: uuid.UUID, base_model: str | None = None) -> Adapter | None:
        """The user's deployed LoRA adapter (the newest active version), if any; with ``base_model``, only
        one trained on that base (after a base-model change users get the base until their next job)."""
        statement = select(Adapter).where(Adapter.user_id == user_id, Adapter.status == AdapterStatus.ACTIVE)
        if base_model is not None:
            statement = statement.where(Adapter.base_model == base_model)
        statement = statement.order_by(Adapter.version.desc()).limit(1)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def history(
        self, user_id: uuid.UUID, start: datetime, end: datetime, limit: int
    ) -> list[Interaction]:
        """Answered recommendations with ``start <= at <= end``, oldest first (the newest ``limit`` of them).

        Unanswered recommendations are not evidence about the person and are left out (see the recommend
        docs).
        """
        statement = (
            select(
                Recommendation.day,
                Recommendation.slot,
                *meter_columns(Recommendation),
                Recommendation.action,
                Feedback.response,
            )
            .join(Feedback, Feedback.recommendation_id == Recommendation.id)
            .where(*_answered_between(user_id, start, end))
            .order_by(Recommendation.at.desc(), Recommendation.created_at.desc())
            .limit(limit)
        )
        rows = (await self.session.execute(statement)).all()
        # Up to HISTORY_ROW_CAP rows per recommendation: positional unpacking (the select's order) and the
        # members the enum columns already return, rather than per-row attribute and enum lookups.
        return [
            Interaction(SlotState(day, _SLOTS[slot], shown_meters(meters)), action, response)
            for day, slot, *meters, action, response in reversed(rows)
        ]

    async def evidence(self, user_id: uuid.UUID, start: datetime, end: datetime) -> Evidence:
        """The user's answers with ``start <= at <= end`` counted per (weekday, slot, action, accepted?): one
        grouped query, however long the window (policy.evidence combines them with the model)."""
        accepted = Feedback.response == Response.ACCEPTED
        # Grouped by kind of day, as Evidence keeps them: up to 160 rows instead of 560 to turn into counts.
        kind = case((Recommendation.day.in_(sorted(WEEKEND_DAYS)), 1), else_=0)
        statement = (
            select(
                kind.label("kind"),
                Recommendation.slot,
                Recommendation.action,
                accepted.label("accepted"),
                func.count().label("n"),
            )
            .join(Feedback, Feedback.recommendation_id == Recommendation.id)
            .where(*_answered_between(user_id, start, end))
            .group_by(kind, Recommendation.slot, Recommendation.action, accepted)
        )
        evidence = Evidence()
        for day_kind, slot, action, was_accepted, n in (await self.session.execute(statement)).all():
            evidence.add_to_day_type(day_kind, slot, action, bool(was_accepted), int(n))
        return evidence

    async def add(self, recommendation: Recommendation) -> Recommendation:
        self.session.add(recommendation)
        await self.session.flush()
        return recommendation
