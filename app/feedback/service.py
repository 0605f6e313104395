"""Feedback: record the person's answer to a recommendation once, as the reward of the policy."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.errors import AppError, NotFoundError
from app.core.idempotency import StoredAnswer, run_idempotent
from app.core.races import hold_user
from app.feedback.repository import FeedbackRepository
from app.feedback.schemas import FeedbackCreate, FeedbackPublic
from app.models import Feedback, User
from app.models.base import utcnow


def _public(feedback: Feedback) -> FeedbackPublic:
    return FeedbackPublic(
        recommendation_id=feedback.recommendation_id,
        response=feedback.response,
        reward=1 if feedback.reward > 0 else -1,
    )


# ``feedback.source`` of answers the calendar sync inferred (app.calendar.sync); explicit ones are ``app``.
INFERRED_SOURCE = "calendar"
EXPLICIT_SOURCE = "app"


async def _replace_inferred(
    repo: FeedbackRepository, user: User, existing: Feedback, data: FeedbackCreate
) -> FeedbackPublic:
    values: dict[str, object] = {
        "response": data.response,
        "reward": data.response.reward,
        "rescheduled_to": data.rescheduled_to,
        "source": EXPLICIT_SOURCE,
    }
    if await repo.replace_inferred(user.id, existing, INFERRED_SOURCE, values):
        return _public(existing)
    # Another explicit answer replaced it a moment earlier: judge against that one.
    return _settled(existing, data)


def _same_answer(feedback: Feedback, data: FeedbackCreate) -> bool:
    return feedback.response is data.response and feedback.rescheduled_to == data.rescheduled_to


def _settled(existing: Feedback, data: FeedbackCreate) -> FeedbackPublic:
    """The answer for a recommendation that already has feedback: a repeat is fine, a change is a conflict."""
    if _same_answer(existing, data):
        return _public(existing)
    raise AppError(
        409,
        "This recommendation already has a different answer",
        code="feedback_conflict",
        details={"response": existing.response.value},
    )


async def give_feedback(
    session: AsyncSession, user: User, settings: Settings, data: FeedbackCreate
) -> FeedbackPublic:
    """Store the user's answer to one of their recommendations and return its reward (+1 / -1).

    The same answer again returns the same result (idempotent without a key); a different answer is 409.
    Feedback later than ``feedback_window`` after the recommendation's moment (``at``, or its creation if that
    is later) is 410: the prompt history must not be rewritten long after the fact.
    """
    # Lock the user row before the insert's foreign-key checks lock the recommendation: a concurrent deletion
    # of this user must not find us holding a row its cascade needs (app.core.races).
    await hold_user(session, user.id)
    repo = FeedbackRepository(session)
    recommendation = await repo.recommendation(user.id, data.recommendation_id)
    if recommendation is None:
        raise NotFoundError("Recommendation not found")
    existing = await repo.feedback_for(user.id, recommendation.id)
    if existing is not None and existing.source != INFERRED_SOURCE:
        return _settled(existing, data)
    opened = max(recommendation.at, recommendation.created_at)
    if utcnow() - opened > settings.feedback_window:
        raise AppError(
            410,
            "The feedback window of this recommendation has closed",
            code="feedback_window_closed",
            details={"window_seconds": settings.feedback_window.total_seconds()},
        )
    if existing is not None:
        # Inferred from the calendar: the person's own answer replaces it (the only answer that ever changes).
        return await _replace_inferred(repo, user, existing, data)
    feedback = Feedback(
        user_id=user.id,
        recommendation_id=recommendation.id,
        response=data.response,
        reward=data.response.reward,
        rescheduled_to=data.rescheduled_to,
        source=EXPLICIT_SOURCE,
    )
    if not await repo.add(feedback):
        # Answered concurrently between our read and our insert: judge against the winner.
        winner = await repo.feedback_for(user.id, recommendation.id)
        if winner is None:
            raise AppError(
                409, "This recommendation is being answered concurrently", code="feedback_conflict"
            )
        if winner.source == INFERRED_SOURCE:
            return await _replace_inferred(repo, user, winner, data)
        return _settled(winner, data)
    return _public(feedback)


async def give_feedback_once(
    session: AsyncSession,
    user: User,
    settings: Settings,
    data: FeedbackCreate,
    *,
    key: str,
    method: str,
    path: str,
) -> StoredAnswer:
    """:func:`give_feedback` under an ``Idempotency-Key``: the first answer is stored and replayed."""

    async def work() -> tuple[int, Any]:
        answer = await give_feedback(session, user, settings, data)
        return 200, answer.model_dump(mode="json")

    return await run_idempotent(
        session,
        scope=user.id,
        key=key,
        method=method,
        path=path,
        body=data.model_dump(mode="json"),
        ttl=settings.idempotency_ttl,
        work=work,
    )
