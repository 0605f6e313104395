"""Request and answer bodies of the fine-tune ops API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from app.models import AdapterStatus, FinetuneStatus


def _json_true_only(value: Any) -> Any:
    # A plain Literal[True] compares by equality, so 1 and 1.0 would pass as true (issue 10: strict types).
    if value is not True:
        raise PydanticCustomError("literal_error", "Input should be true (the JSON boolean)")
    return value


JsonTrue = Annotated[Literal[True], BeforeValidator(_json_true_only)]


class FinetuneJobCreate(BaseModel):
    """Exactly one of ``user_id`` (that user's job of this ISO week) or ``all_eligible: true``."""

    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID | None = None
    all_eligible: JsonTrue | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FinetuneJobCreate:
        if (self.user_id is None) == (self.all_eligible is None):
            raise ValueError('give exactly one of "user_id" or "all_eligible": true')
        return self


class FinetuneJobsQueuedPublic(BaseModel):
    job_ids: list[uuid.UUID]


class FinetuneJobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    iso_week: str
    status: FinetuneStatus
    attempt: int
    max_attempts: int
    base_model: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    lease_expires_at: datetime | None
    adapter_id: uuid.UUID | None
    adapter_uri: str | None
    params: dict[str, Any] | None
    metrics: dict[str, Any] | None
    gate: dict[str, Any] | None = Field(
        description="The offline gate: SNIPS estimates of the candidate and the current policy on the "
        "held-out days (value, standard error, bounds, effective sample size), the decision (`promoted`, "
        "`promoted_pooled`, `held_back`, `not_enough_evidence`) and, when the user's own evidence was too "
        "small, the week's pooled estimate."
    )
    reason: str | None = Field(description="Why the job was skipped or its adapter held back.")
    error: str | None


class FinetuneJobPage(BaseModel):
    items: list[FinetuneJobPublic]
    next_cursor: str | None


class AdapterPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    version: int
    base_model: str
    status: AdapterStatus
    created_at: datetime
    n_interactions: int
    metrics: dict[str, Any] | None


class UserAdaptersPublic(BaseModel):
    active: AdapterPublic | None
    items: list[AdapterPublic]


class AdapterRollbackPublic(BaseModel):
    active: AdapterPublic | None = Field(description="The adapter the user now gets; null: the base model.")
    retired: AdapterPublic
