"""The operational endpoints' answers: liveness, readiness and what the heartbeats say."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ProcessLivenessPublic(BaseModel):
    """What the heartbeats of one kind of background process (workers, beat) say."""

    alive: bool = Field(description="A running process stamped its heartbeat within `stale_after_s`.")
    running: int = Field(description="Processes of this kind with a fresh heartbeat.")
    last_heartbeat_at: datetime | None = Field(description="Newest heartbeat of a running process, if any.")
    age_s: float | None = Field(description="Seconds since `last_heartbeat_at`.")
    stale_after_s: float
    error: str | None = Field(default=None, description="Why the heartbeats could not be read.")


class HealthPublic(BaseModel):
    status: str


class ReadinessPublic(BaseModel):
    status: str = Field(description="`ok`, or `degraded` when beat is not alive (requests are still served).")
    checks: dict[str, bool]
    worker: ProcessLivenessPublic
    beat: ProcessLivenessPublic
