"""Request and response bodies of ``POST /v1/recommend``."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import TYPE_CHECKING, Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, create_model, model_validator

from app.core.timebounds import BOUND_DESCRIPTION, Instant
from domain import ACTIONS, METER_NAMES, Action, Meter, Meters

# Strict: JSON numbers only (``"0.5"`` and ``true`` are refused, not coerced); 0 and 1 are numbers too.
MeterValue = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]


class _MetersBase(BaseModel):
    """The five meters, each a number in [0, 1]."""

    model_config = ConfigDict(extra="forbid")

    def to_domain(self) -> Meters:
        return Meters.from_mapping(self.model_dump())

    @classmethod
    def from_domain(cls, meters: Meters) -> Self:
        return cls.model_validate(meters.as_dict())


# One field per meter, named after it: the names come from ``domain.METERS``, never spelled out here.
if TYPE_CHECKING:
    MeterValues = _MetersBase
else:
    MeterValues = create_model(
        "MeterValues",
        __base__=_MetersBase,
        __doc__=_MetersBase.__doc__,
        **{name: (MeterValue, ...) for name in METER_NAMES},
    )
_EXAMPLE_METERS: dict[str, JsonValue] = dict(zip(METER_NAMES, (0.7, 0.6, 0.4, 0.5, 0.3), strict=True))


class MetersSource(enum.StrEnum):
    REQUEST = "request"  # sent in this request
    SNAPSHOT = "snapshot"  # the user's latest meter snapshot (from the bridges)
    NEUTRAL = "neutral"  # nothing known: 0.5 each


class RecommendationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {},
                {
                    "at": "2026-11-24T08:30:00+01:00",
                    "meters": _EXAMPLE_METERS,
                    "exclude": ["BINGE_WATCH"],
                },
            ]
        },
    )

    at: Instant | None = Field(
        default=None,
        description="The moment to recommend for (default: now); decides the day and slot in the user's time "
        f"zone. {BOUND_DESCRIPTION} Times without an offset, and numbers, are refused.",
    )
    meters: MeterValues | None = Field(
        default=None,
        description="The person's meters now (default: their latest snapshot; none known: 0.5 each, "
        'flagged with `meters_source: "neutral"`).',
    )
    exclude: list[Action] = Field(
        default_factory=list, max_length=len(ACTIONS), description="Actions not to propose (at most 9)."
    )

    @model_validator(mode="after")
    def _something_left(self) -> Self:
        if set(self.exclude) >= set(ACTIONS):
            raise ValueError("exclude leaves no action to recommend")
        return self


class RecommendationPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recommendation_id": "0b6f7f0e-3f7e-4a5e-9a53-2d3c1f0c9a11",
                    "action": "DEEP_WORK",
                    "probabilities": {
                        "DEEP_WORK": 0.31,
                        "ADMIN_WORK": 0.12,
                        "LEARN": 0.14,
                        "SLEEP": 0.02,
                        "EXERCISE": 0.11,
                        "MEDITATE": 0.08,
                        "FAMILY_TIME": 0.05,
                        "SOCIALIZE": 0.04,
                        "ME_TIME": 0.07,
                        "BINGE_WATCH": 0.06,
                    },
                    "propensity": 0.31,
                    "at": "2026-11-24T07:30:00Z",
                    "date": "2026-11-24",
                    "day": "Tue",
                    "slot": "Morning",
                    "meters": _EXAMPLE_METERS,
                    "meters_source": "request",
                    "backend": "local",
                    "model": "rhythm-tiny",
                    "adapter": None,
                    "belief": None,
                    "temperature": 1.0,
                }
            ]
        }
    )

    recommendation_id: uuid.UUID
    action: Action
    probabilities: dict[Action, float] = Field(
        description="Probability of every action (all 10, summing to 1) in the distribution the action was "
        "sampled from: the model's distribution combined with the person's own answers in this slot, then "
        "exclusions, temperature and the exploration floor (every allowed action keeps at least floor / 10)."
    )
    propensity: float = Field(description="Probability of the chosen action; logged for offline evaluation.")
    at: dt.datetime
    date: dt.date = Field(
        description="The user's local slot day (Night after midnight belongs to the day before)."
    )
    day: str = Field(description="Weekday of the slot day: Mon … Sun.")
    slot: str = Field(description="Morning 05–12, Afternoon 12–17, Evening 17–22, Night 22–05 local time.")
    meters: MeterValues = Field(
        description="The meters the model was shown. A meter the snapshot lacks is shown as 0.5 (renderer "
        "version 1 has no missing token) and listed in `missing_meters`."
    )
    meters_source: MetersSource = Field(
        description="Where the meters came from: `request` (this body), `snapshot` (the user's latest meter "
        "snapshot at or before `at`, from the bridges) or `neutral` (nothing known: 0.5 each)."
    )
    meters_taken_at: dt.datetime | None = Field(
        default=None, description="For `snapshot`: when the snapshot was taken; null otherwise."
    )
    meter_confidences: dict[Meter, float] | None = Field(
        default=None,
        description="For `snapshot`: the bridge's confidence in each meter, 0 (missing) to 1; null when the "
        "snapshot carries none.",
    )
    missing_meters: list[Meter] = Field(
        default_factory=list,
        description="Meters with no known value, stored as null on the recommendation: those the snapshot "
        "had no fresh input for, or all five when `meters_source` is `neutral`.",
    )
    backend: str = Field(description="`local`, `vllm` or `fallback`: who answered.")
    model: str
    adapter: str | None = Field(description="The user's LoRA adapter that answered; null without one.")
    belief: dict[str, float] | None = Field(
        description="Posterior over archetypes, for policies that keep one."
    )
    temperature: float
