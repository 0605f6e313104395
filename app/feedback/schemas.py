"""Request and response bodies of ``POST /v1/feedback``."""

from __future__ import annotations

import uuid
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from app.core.timebounds import BOUND_DESCRIPTION, Instant
from domain import Response

# The rule "rescheduled_to only with rescheduled" in the JSON schema too, so clients and generators see it:
# exactly one branch holds for any response value. The accepted JSON is unchanged (null or absent otherwise).
_RESCHEDULED_RULE: list[JsonValue] = [
    {
        "properties": {
            "response": {"enum": [r.value for r in Response if r is not Response.RESCHEDULED]},
            "rescheduled_to": {"type": "null"},
        }
    },
    {"properties": {"response": {"const": Response.RESCHEDULED.value}}},
]


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": _RESCHEDULED_RULE,
            "examples": [
                {"recommendation_id": "0b6f7f0e-3f7e-4a5e-9a53-2d3c1f0c9a11", "response": "accepted"},
                {
                    "recommendation_id": "0b6f7f0e-3f7e-4a5e-9a53-2d3c1f0c9a11",
                    "response": "rescheduled",
                    "rescheduled_to": "2026-11-24T18:00:00+01:00",
                },
            ],
        },
    )

    recommendation_id: uuid.UUID
    response: Response = Field(description="`accepted` (reward +1), `ignored` or `rescheduled` (reward -1).")
    rescheduled_to: Instant | None = Field(
        default=None,
        description=f'When the person moved it to; only with `response: "rescheduled"`. {BOUND_DESCRIPTION}',
    )

    @model_validator(mode="after")
    def _rescheduled_only_when_rescheduled(self) -> Self:
        if self.rescheduled_to is not None and self.response is not Response.RESCHEDULED:
            raise ValueError('rescheduled_to is only allowed with response "rescheduled"')
        return self


class FeedbackPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recommendation_id": "0b6f7f0e-3f7e-4a5e-9a53-2d3c1f0c9a11",
                    "response": "accepted",
                    "reward": 1,
                }
            ]
        }
    )

    recommendation_id: uuid.UUID
    response: Response
    reward: Literal[1, -1]
