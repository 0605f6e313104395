"""Oura v2's documented webhook payload and usercollection documents (bridges.md §2.2): fields we read."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,64}$")]
Number = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class OuraEvent(_Model):
    """Fields ``event_type``, ``data_type``, ``object_id``, ``event_time``, ``user_id``."""

    event_type: Name
    data_type: Name
    object_id: Id
    event_time: datetime
    user_id: Id


class SleepPeriod(_Model):
    id: Id
    day: date
    type: str | None = None
    bedtime_end: datetime
    average_hrv: Number | None = None
    lowest_heart_rate: Number | None = None
    deep_sleep_duration: Number | None = None
    rem_sleep_duration: Number | None = None
    light_sleep_duration: Number | None = None
    awake_time: Number | None = None
    total_sleep_duration: Number | None = None


class DailyScore(_Model):
    """``daily_sleep`` and ``daily_readiness``: a 1-100 score for a day."""

    id: Id
    day: date
    score: Number | None = None


class DailyActivity(_Model):
    id: Id
    day: date
    steps: Number | None = None


class DailyStress(_Model):
    id: Id
    day: date
    stress_high: Number | None = None
    recovery_high: Number | None = None
