"""Google Health v4 notifications and data points (bridges.md §2.4b, the client's bundled ``health.v4``
discovery document): the fields the bridge reads."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Id = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Number = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Interval(_Model):
    startTime: datetime
    endTime: datetime


class GoogleHealthEvent(_Model):
    """A subscriber verification (``{"type": "verification"}``) or a change notification."""

    type: str | None = None
    healthUserId: Id | None = None
    dataType: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,64}$")] | None = None
    operation: Literal["UPSERT", "DELETE"] | None = None
    intervals: list[Interval] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _one_of_the_two(self) -> GoogleHealthEvent:
        if self.is_verification:
            return self
        if self.healthUserId is None or self.dataType is None or self.operation is None:
            raise ValueError("a notification names healthUserId, dataType and operation")
        return self

    @property
    def is_verification(self) -> bool:
        return self.type == "verification"


class GoogleDate(_Model):
    year: int
    month: int
    day: int

    def as_date(self) -> date:
        return date(self.year, self.month, self.day)


class DailyHeartRateVariability(_Model):
    date: GoogleDate
    averageHeartRateVariabilityMilliseconds: Number | None = None


class DailyRestingHeartRate(_Model):
    date: GoogleDate
    # int64 fields arrive as JSON strings (proto3 JSON mapping).
    beatsPerMinute: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,4}$")]


class SessionInterval(_Model):
    endTime: datetime


class SleepSummary(_Model):
    minutesAsleep: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,5}$")] | None = None
    minutesAwake: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,5}$")] | None = None


class SleepMetadata(_Model):
    mainSleep: bool | None = None
    nap: bool | None = None


class Sleep(_Model):
    interval: SessionInterval
    summary: SleepSummary | None = None
    metadata: SleepMetadata | None = None


class DataPoint(_Model):
    name: str | None = None
    dailyHeartRateVariability: DailyHeartRateVariability | None = None
    dailyRestingHeartRate: DailyRestingHeartRate | None = None
    sleep: Sleep | None = None
