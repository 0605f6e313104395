"""All SQL of the feedback path. Every statement is filtered by the calling user."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.races import is_foreign_key_violation
from app.models import Feedback, Recommendation


class FeedbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def recommendation(self, user_id: uuid.UUID, recommendation_id: uuid.UUID) -> Recommendation | None:
        """The user's recommendation; another user's is ``None``, exactly like a missing one (OWASP API1)."""
        statement = select(Recommendation).where(
            Recommendation.id == recommendation_id, Recommendation.user_id == user_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def feedback_for(self, user_id: uuid.UUID, recommendation_id: uuid.UUID) -> Feedback | None:
        statement = select(Feedback).where(
            Feedback.recommendation_id == recommendation_id, Feedback.user_id == user_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def add(self, feedback: Feedback) -> bool:
        """Insert ``feedback``; ``False`` if the recommendation was answered concurrently (unique constraint).

        A savepoint keeps the request's transaction usable after the conflict.
        """
        try:
            async with self.session.begin_nested():
                self.session.add(feedback)
                await self.session.flush()
        except IntegrityError as exc:
            # Only the unique answer-per-recommendation means "answered concurrently"; a foreign-key failure
            # means the user (and their recommendation) was deleted meanwhile: app.core.races answers that.
            if is_foreign_key_violation(exc):
                raise
            return False
        return True

    async def replace_inferred(
        self, user_id: uuid.UUID, feedback: Feedback, inferred_source: str, values: dict[str, object]
    ) -> bool:
        """Overwrite ``feedback`` with ``values`` only while it is still an inferred answer; ``False`` when a
        concurrent explicit answer replaced it first (conditional UPDATE: two answers cannot both win)."""
        statement = (
            update(Feedback)
            .where(
                Feedback.id == feedback.id,
                Feedback.user_id == user_id,
                Feedback.source == inferred_source,
            )
            .values(**values)
            .returning(Feedback.id)
            .execution_options(synchronize_session=False)
        )
        replaced = (await self.session.execute(statement)).scalar_one_or_none() is not None
        await self.session.refresh(feedback)
        return replaced
