"""Answers of ``GET /v1/users/me/meters``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, Field

from domain import Meter


class MeterSnapshotPublic(BaseModel):
    """One snapshot: each meter's value (null = missing: no fresh input) and the confidence in it."""

    id: uuid.UUID
    taken_at: dt.datetime
    source: str = Field(description="Who computed it: `bridge` (the meters engine) or another producer.")
    engine_version: str | None = Field(description="The engine that computed it, e.g. `meters/1`.")
    meters: dict[Meter, float | None] = Field(description="Each meter in [0, 1], or null when missing.")
    confidences: dict[Meter, float | None] = Field(
        description="Confidence in each meter, 0 (missing) to 1; null when the producer recorded none."
    )
    missing: list[Meter] = Field(description="The meters with no fresh input at `taken_at`.")
    provenance: dict[str, Any] | None = Field(
        description="Which inputs each meter used and how fresh they were (kind, source, value, z, weight, "
        "freshness, age, baseline); see docs/meters.md."
    )


class MeterSnapshotPage(BaseModel):
    items: list[MeterSnapshotPublic] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null at the end."
    )
