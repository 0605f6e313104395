"""Terra's documented webhook payload (bridges.md §2.6): the fields the bridge reads; others are ignored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Id = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Number = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TerraUser(_Model):
    user_id: Id
    provider: str | None = None
    # What our backend passed when it created the widget session: our user id.
    reference_id: str | None = None


class Metadata(_Model):
    start_time: datetime
    end_time: datetime


class HeartRateSummary(_Model):
    resting_hr_bpm: Number | None = None
    avg_hrv_rmssd: Number | None = None
    avg_hrv_sdnn: Number | None = None


class HeartRateData(_Model):
    summary: HeartRateSummary | None = None


class HeartData(_Model):
    heart_rate_data: HeartRateData | None = None


class StressData(_Model):
    avg_stress_level: Number | None = None


class DistanceData(_Model):
    steps: Number | None = None


class Scores(_Model):
    sleep: Number | None = None


class Asleep(_Model):
    duration_asleep_state_seconds: Number | None = None
    duration_deep_sleep_state_seconds: Number | None = None
    duration_light_sleep_state_seconds: Number | None = None
    # Terra spells this one with a capital REM.
    duration_rem_sleep_state_seconds: Number | None = Field(
        default=None, alias="duration_REM_sleep_state_seconds"
    )


class Awake(_Model):
    duration_awake_state_seconds: Number | None = None


class SleepDurations(_Model):
    asleep: Asleep | None = None
    awake: Awake | None = None


class DataEnrichment(_Model):
    sleep_score: Number | None = None


class DataItem(_Model):
    """One element of ``data[]``; which fields appear depends on the envelope's ``type``."""

    metadata: Metadata
    heart_rate_data: HeartRateData | None = None
    heart_data: HeartData | None = None
    stress_data: StressData | None = None
    distance_data: DistanceData | None = None
    scores: Scores | None = None
    sleep_durations_data: SleepDurations | None = None
    data_enrichment: DataEnrichment | None = None


class TerraEvent(_Model):
    """The envelope: ``type``, ``user``, ``data[]``; lifecycle events add ``status`` and old/new user."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    user: TerraUser | None = None
    data: list[DataItem] = Field(default_factory=list, max_length=1000)
    reference_id: str | None = None
    status: str | None = None
    old_user: TerraUser | None = None
    new_user: TerraUser | None = None
    version: str | None = None
