"""Logged histories for fine-tune tests, written the way the recommend path writes them.

Each recommendation's ``prompt_hash`` is computed from the history that ``RecommendationRepository.history``
(the production query) returns at that moment, so the fine-tune's re-rendering is checked against the real
recommend path, not against itself.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Feedback, Recommendation
from app.recommend.repository import HISTORY_ROW_CAP, RecommendationRepository
from app.recommend.service import prompt_hash
from app.recommend.slots import local_slot, window_start, zone
from domain import ACTIONS, Action, Meters, Response, SlotState
from policy.paths import MODEL_NAME
from policy.prompt import RENDERER_VERSION, render_prompt

LIKED = Action.FAMILY_TIME
SLOT_HOURS = (7, 19)  # two recommendations a day: morning and evening


async def log_history(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    days: int,
    end: datetime | None = None,
    seed: int = 0,
    history_days: int = 30,
) -> int:
    """``days`` days of answered recommendations ending before ``end``: the user accepts ``LIKED`` and
    ignores everything else; actions are drawn from a broad logged distribution (so off-policy weights
    exist). Returns the number of rows."""
    rng = np.random.default_rng(seed)
    repo = RecommendationRepository(session)
    tz = zone("UTC")
    end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start_day = (end - timedelta(days=days)).date()
    count = 0
    for day_offset in range(days):
        for hour in SLOT_HOURS:
            at = datetime(start_day.year, start_day.month, start_day.day, hour, tzinfo=UTC) + timedelta(
                days=day_offset
            )
            where = local_slot(at, tz)
            meters = Meters.from_sequence(np.round(rng.uniform(0.2, 0.9, 5), 2).tolist())
            history = await repo.history(user_id, window_start(where, history_days, tz), at, HISTORY_ROW_CAP)
            prompt = render_prompt(
                history, SlotState(where.weekday, where.slot, meters), window_days=history_days
            )
            probs = rng.dirichlet(np.full(10, 2.0))
            probs = 0.8 * probs + 0.2 / 10
            chosen = int(rng.choice(10, p=probs))
            recommendation = Recommendation(
                user_id=user_id,
                at=at,
                day=where.weekday,
                slot=int(where.slot),
                **meters.as_dict(),
                action=ACTIONS[chosen],
                probabilities=[float(p) for p in probs],
                propensity=float(probs[chosen]),
                temperature=1.0,
                model=MODEL_NAME,
                backend="local",
                prompt_hash=prompt_hash(prompt),
                renderer_version=RENDERER_VERSION,
            )
            session.add(recommendation)
            await session.flush()
            response = Response.ACCEPTED if ACTIONS[chosen] is LIKED else Response.IGNORED
            session.add(
                Feedback(
                    user_id=user_id,
                    recommendation_id=recommendation.id,
                    response=response,
                    reward=response.reward,
                )
            )
            await session.flush()
            count += 1
    await session.commit()
    return count
