"""WHOOP v2's documented webhook payload and REST resources (bridges.md §2.1): the fields the bridge reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Number = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WhoopEvent(_Model):
    """``{"user_id": 10129, "id": "<uuid>", "type": "sleep.updated", "trace_id": "<uuid>"}``."""

    user_id: StrictInt
    # v2: a UUID for sleep/workout, and on ``recovery.*`` the *sleep* UUID (there is no recovery id).
    id: Id
    type: Annotated[str, StringConstraints(pattern=r"^[a-z_]+\.[a-z_]+$", max_length=64)]
    trace_id: Id


class StageSummary(_Model):
    total_in_bed_time_milli: Number | None = None
    total_awake_time_milli: Number | None = None
    total_light_sleep_time_milli: Number | None = None
    total_slow_wave_sleep_time_milli: Number | None = None
    total_rem_sleep_time_milli: Number | None = None


class SleepScore(_Model):
    stage_summary: StageSummary | None = None
    sleep_performance_percentage: Number | None = None


class Sleep(_Model):
    id: Id
    cycle_id: int | None = None
    nap: bool = False
    start: datetime
    end: datetime
    score_state: str
    score: SleepScore | None = None


class RecoveryScore(_Model):
    user_calibrating: bool | None = None
    recovery_score: Number | None = None
    resting_heart_rate: Number | None = None
    hrv_rmssd_milli: Number | None = None


class Recovery(_Model):
    cycle_id: int
    sleep_id: Id
    score_state: str
    score: RecoveryScore | None = None


class CycleScore(_Model):
    strain: Number | None = None


class Cycle(_Model):
    id: int
    start: datetime
    end: datetime | None = None
    score_state: str
    score: CycleScore | None = None
