"""Health Auto Export's JSON (bridges.md §3): ``data.metrics[]`` of ``{name, units, data[]}``; a quantity
point is ``{qty, date}``, an aggregated night ``{date, totalSleep, core, deep, rem, awake, sleepEnd, …}``."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
MAX_POINTS = 5000


class HealthPoint(BaseModel):
    """One Health Auto Export data point: a quantity (``qty``) or an aggregated night (sleep)."""

    model_config = ConfigDict(extra="ignore")

    date: Annotated[str, StringConstraints(max_length=40)]
    qty: Number | None = None
    totalSleep: Number | None = None
    asleep: Number | None = None
    core: Number | None = None
    deep: Number | None = None
    rem: Number | None = None
    awake: Number | None = None
    sleepEnd: Annotated[str, StringConstraints(max_length=40)] | None = None


class HealthMetric(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    units: Annotated[str, StringConstraints(max_length=32)] = ""
    data: list[HealthPoint] = Field(default_factory=list, max_length=MAX_POINTS)


class HealthData(BaseModel):
    model_config = ConfigDict(extra="ignore")  # workouts, stateOfMind, …: not read

    metrics: list[HealthMetric] = Field(default_factory=list, max_length=200)


class AppleHealthExport(BaseModel):
    """Health Auto Export's "REST API" automation body (JSON format, version 2)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "data": {
                        "metrics": [
                            {
                                "name": "heart_rate_variability",
                                "units": "ms",
                                "data": [{"qty": 48.2, "date": "2026-12-01 07:02:11 +0100"}],
                            }
                        ]
                    }
                }
            ]
        },
    )

    data: HealthData
