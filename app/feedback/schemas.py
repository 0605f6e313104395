"""Request and response bodies of ``POST /v1/feedback``."""

from __future__ import annotations

import uuid
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from domain import Response


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"recommendation_id": "0b6f7f0e-3f7e-4a5e-9a53-2d3c1f0c9a11", "response": "accepted"},
                {
                    "recommendation_id": "0b6f7f0e-3f7e-4a5e-9a53-2d3c1f0c9a11",
                    "response": "rescheduled",
                    "rescheduled_to": "2026-11-24T18:00:00+01:00",
                },
            ]
        },
    )

    recommendation_id: uuid.UUID
    response: Response = Field(description="`accepted` (reward +1), `ignored` or `rescheduled` (reward -1).")
    rescheduled_to: AwareDatetime | None = Field(
        default=None, description='When the person moved it to; only with `response: "rescheduled"`.'
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
