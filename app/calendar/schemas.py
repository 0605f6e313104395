"""Bodies of the calendar-events routes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from domain import Action


class SlotPublic(BaseModel):
    date: str = Field(description="The slot day (a Night after midnight belongs to the day before).")
    slot: str = Field(description="MORNING, AFTERNOON, EVENING or NIGHT, in the user's time zone.")


class CalendarEventPublic(BaseModel):
    id: uuid.UUID
    title: str | None
    starts_at: datetime
    ends_at: datetime
    all_day: bool
    slots: list[SlotPublic] = Field(description="The slots the event covers (none for all-day events).")
    action: Action | None = Field(description="The action it amounts to; null: not an action.")
    confidence: float | None
    source: str | None = Field(description="Who decided the action: `rule`, `llm` or `user`.")
    context: str | None = Field(
        description="What it tells the meters besides an action, e.g. `out_of_office`."
    )


class CalendarEventPage(BaseModel):
    items: list[CalendarEventPublic]


class ActionCorrectionUpdate(BaseModel):
    """The user's verdict on an event: remembered for the event, its recurring series and identical titles."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"action": "EXERCISE"}, {"action": None}]},
    )

    action: Action | None = Field(description="One of the 10 actions, or null for 'not an action'.")
