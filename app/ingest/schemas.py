"""Request and response bodies of the phone uploads (strict: numbers are never read from strings)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.core.timebounds import BOUND_DESCRIPTION, Instant
from bridges.apple_health.schemas import AppleHealthExport
from bridges.meters.signals import SignalKind, Unit

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
MAX_POINTS = 5000

__all__ = [
    "AppleHealthExport",
    "IngestPublic",
    "RejectedReadingPublic",
    "SignalBatchCreate",
    "SignalReadingCreate",
]


class SignalReadingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: SignalKind = Field(description="What was measured (`GET /openapi.json` lists every kind).")
    value: Number
    unit: Unit | None = Field(default=None, description="The value's unit; default the kind's canonical one.")
    observed_at: Instant = Field(description=f"When it was measured. {BOUND_DESCRIPTION}")


class SignalBatchCreate(BaseModel):
    """Readings the mobile app measured itself (on-device counts such as messages sent, for Connection)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "readings": [
                        {"kind": "messages_sent", "value": 42, "observed_at": "2026-12-01T21:00:00+01:00"},
                        {
                            "kind": "steps",
                            "value": 8012,
                            "unit": "count",
                            "observed_at": "2026-12-01T00:00:00Z",
                        },
                    ]
                }
            ]
        },
    )

    readings: list[SignalReadingCreate] = Field(min_length=1, max_length=MAX_POINTS)


class RejectedReadingPublic(BaseModel):
    index: int = Field(description="Position in the upload (Apple Health: of the readings derived from it).")
    kind: str
    code: str
    reason: str


class IngestPublic(BaseModel):
    """What an upload changed. Re-uploading the same readings writes nothing (``written: 0``)."""

    received: int = Field(description="Readings in the upload (Apple Health: derived from known metrics).")
    written: int = Field(description="Readings stored or changed; unchanged ones are not counted.")
    rejected: list[RejectedReadingPublic] = Field(default_factory=list)
    ignored_metrics: list[str] = Field(
        default_factory=list, description="Metric names the bridge does not read."
    )
