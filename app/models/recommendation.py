"""Recommendations the policy made and the feedback (reward) they received."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import (
    METER_COLUMNS,
    Base,
    CreatedAtMixin,
    IdMixin,
    JSONType,
    MeterColumnsMixin,
    UserOwnedMixin,
    str_enum,
    unit_interval_checks,
    utcnow,
)
from domain import Action, Response


class Recommendation(IdMixin, UserOwnedMixin, CreatedAtMixin, MeterColumnsMixin, Base):
    """One decision of the policy, logged with everything off-policy evaluation and fine-tuning need.

    ``probabilities`` holds all 10 action probabilities in ``domain.ACTIONS`` order; ``propensity`` is the
    probability of the chosen action under the sampling temperature.
    """

    __tablename__ = "recommendations"
    __table_args__ = (
        *unit_interval_checks(*METER_COLUMNS),
        CheckConstraint("day >= 0 AND day <= 6", name="day_of_week"),
        CheckConstraint("slot >= 0 AND slot <= 3", name="slot_of_day"),
        CheckConstraint("propensity >= 0 AND propensity <= 1", name="propensity_unit"),
        CheckConstraint("temperature > 0", name="temperature_positive"),
        CheckConstraint(
            "exploration_floor IS NULL OR (exploration_floor >= 0 AND exploration_floor < 1)",
            name="exploration_floor_unit",
        ),
        Index("ix_recommendations_user_id_created_at", "user_id", "created_at"),
        Index("ix_recommendations_user_id_at", "user_id", "at"),
    )

    # The moment the recommendation is for (``day``/``slot``: its local weekday and slot); orders the history.
    at: Mapped[datetime] = mapped_column(default=utcnow)

    day: Mapped[int]
    slot: Mapped[int]
    # True when no meter data was available and the neutral state (0.5 each) was used instead.
    neutral_meters: Mapped[bool] = mapped_column(default=False)
    action: Mapped[Action] = mapped_column(str_enum(Action, "action"))
    probabilities: Mapped[list[float]] = mapped_column(JSONType)
    propensity: Mapped[float]
    temperature: Mapped[float]
    model: Mapped[str] = mapped_column(String(255))
    adapter: Mapped[str | None] = mapped_column(String(255))
    adapter_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("adapters.id", ondelete="SET NULL"), index=True
    )
    backend: Mapped[str] = mapped_column(String(16))
    prompt_hash: Mapped[str | None] = mapped_column(String(64))
    # policy.prompt.RENDERER_VERSION the prompt was rendered with: a fine-tune checks its re-rendered prompt
    # against ``prompt_hash`` only for rows of the current version.
    renderer_version: Mapped[int | None]
    belief: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # What the backend returned before the person's answers were combined in and before exclusions,
    # temperature and floor (``probabilities`` is what was sampled from): a later estimator or fine-tune can
    # recompute any of those steps. NULL on rows logged before revision 0011.
    model_probabilities: Mapped[list[float] | None] = mapped_column(JSONType)
    # The exploration floor the row was sampled with (NULL before 0011).
    exploration_floor: Mapped[float | None]
    # policy.evidence: the settings and the counts this decision's combination used (NULL before 0011 and
    # when the combination is off).
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class Feedback(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """The person's response to one recommendation (at most one): the reward of the bandit."""

    __tablename__ = "feedback"
    __table_args__ = (CheckConstraint("reward IN (-1, 1)", name="reward_sign"),)

    recommendation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recommendations.id", ondelete="CASCADE"), unique=True
    )
    response: Mapped[Response] = mapped_column(str_enum(Response, "response"))
    reward: Mapped[int]
    rescheduled_to: Mapped[datetime | None]
    # Who answered: ``app`` (the person, explicitly) or ``calendar`` (inferred from their calendar, migration
    # 0008). An explicit answer replaces an inferred one, never the reverse.
    source: Mapped[str] = mapped_column(String(16), default="app", server_default="app")
