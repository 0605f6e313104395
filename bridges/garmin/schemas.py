"""Garmin Health API push bodies (bridges.md §2.3): one object keyed by summary type, each a list."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

Id = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Number = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Summary(_Model):
    userId: Id
    summaryId: Id
    startTimeInSeconds: StrictInt
    durationInSeconds: StrictInt | None = None


class Daily(Summary):
    steps: Number | None = None
    restingHeartRateInBeatsPerMinute: Number | None = None
    # -1 means "not enough data": passed on as is, the signal vocabulary rejects it (never a calm 0).
    averageStressLevel: Number | None = None


class SleepScoreValue(_Model):
    value: Number | None = None


class SleepScores(_Model):
    overall: SleepScoreValue | None = None


class SleepSummary(Summary):
    deepSleepDurationInSeconds: Number | None = None
    lightSleepDurationInSeconds: Number | None = None
    remSleepInSeconds: Number | None = None
    awakeDurationInSeconds: Number | None = None
    overallSleepScore: SleepScoreValue | None = None
    sleepScores: SleepScores | None = None


class HrvSummary(Summary):
    lastNightAvg: Number | None = None


class Deregistration(_Model):
    userId: Id


class GarminPush(_Model):
    """The summary types the bridge reads; Garmin's other keys (epochs, bodyComps, …) are ignored."""

    dailies: list[Daily] = Field(default_factory=list, max_length=1000)
    sleeps: list[SleepSummary] = Field(default_factory=list, max_length=1000)
    hrv: list[HrvSummary] = Field(default_factory=list, max_length=1000)
    deregistrations: list[Deregistration] = Field(default_factory=list, max_length=1000)
    other_types: list[str] = Field(default_factory=list, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _known_shape(cls, data: object) -> object:
        # Garmin always sends at least one summary type, each a list; anything else is not a Garmin push.
        if not isinstance(data, dict) or not data:
            raise ValueError("a Garmin push is an object of summary lists")
        if not all(isinstance(value, list) for value in data.values()):
            raise ValueError("every summary type must be a list")
        known = {"dailies", "sleeps", "hrv", "deregistrations"}
        return {**data, "other_types": sorted(key for key in data if key not in known)}
