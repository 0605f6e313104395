"""``rhythm bench console``: server-side render time of the console's person page for a 30-day history.

A person with ``--days`` days of data (two meter snapshots a day, four answered recommendations a day,
calendar events, two devices, three adapter versions and fine-tune jobs) is seeded into a temporary, migrated
Postgres database. The app then renders ``GET /console/users/{id}`` in-process (httpx over ASGI, so no network
or browser time is counted, only the route: session check, queries, aggregation and the Jinja2 template)
``--requests`` times after a warm-up; the p50 / p95 / max are printed. The console tests seed with the same
function.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import typer
from rich.progress import Progress
from sqlalchemy.ext.asyncio import AsyncSession

from app.finetune.service import iso_week
from app.models import (
    Adapter,
    AdapterStatus,
    CalendarEvent,
    DeviceConnection,
    Feedback,
    FinetuneJob,
    FinetuneStatus,
    MeterSnapshot,
    Recommendation,
)
from app.models.signals import CONFIDENCE_SUFFIX
from domain import ACTIONS, METER_NAMES, N_ACTIONS, Action, Meter, Response, Slot

CALENDAR_TITLES: tuple[tuple[str, Action | None], ...] = (
    ("Quarterly planning", Action.DEEP_WORK),
    ("Expense reports", Action.ADMIN_WORK),
    ("Yoga class", Action.EXERCISE),
    ("Dinner with Sam", Action.SOCIALIZE),
    ("Dentist", None),
)


# What the meters engine would have read for each meter (kinds from bridges/meters/signals.py).
SEED_INPUTS: dict[str, tuple[tuple[str, str], ...]] = {
    Meter.VITALITY.value: (("sleep_duration", "oura"), ("hrv_rmssd", "oura")),
    Meter.COGNITION.value: (("sleep_score", "oura"), ("meeting_density", "google")),
    Meter.PROGRESS.value: (("task_completion_rate", "google"),),
    Meter.SERENITY.value: (("stress_score", "fitbit"), ("resting_heart_rate", "oura")),
    Meter.CONNECTION.value: (("social_events_7d", "google"),),
}


def _probabilities(rng: random.Random, favourite: int) -> list[float]:
    weights = [rng.random() + (3.0 if i == favourite else 0.2) for i in range(N_ACTIONS)]
    total = sum(weights)
    return [w / total for w in weights]


async def seed_person_history(
    session: AsyncSession, user_id: uuid.UUID, *, days: int = 30, now: datetime | None = None, seed: int = 7
) -> dict[str, int]:
    """Insert a realistic history for ``user_id`` ending at ``now`` (the caller commits); returns counts."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    start = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    snapshots: list[Any] = []
    for step in range(days * 2):
        taken = start + timedelta(hours=12 * step + 7)
        if taken > now:
            break
        values = {name: round(min(1.0, max(0.0, 0.5 + 0.3 * rng.uniform(-1, 1))), 3) for name in METER_NAMES}
        if step % 3 == 0:  # a client sending its own meters: no confidence, no provenance
            snapshots.append(MeterSnapshot(user_id=user_id, taken_at=taken, source="client", **values))
            continue
        confidences = {name: round(rng.uniform(0.5, 0.95), 2) for name in METER_NAMES}
        provenance = {
            "engine": "meters/1",
            "meters": {
                name: {
                    "value": values[name],
                    "confidence": confidences[name],
                    "inputs": [
                        {"kind": kind, "source": source, "age_s": rng.randrange(3_600, 30_000)}
                        for kind, source in SEED_INPUTS[name]
                    ],
                }
                for name in METER_NAMES
            },
        }
        snapshots.append(
            MeterSnapshot(
                user_id=user_id,
                taken_at=taken,
                source="bridge",
                engine_version="meters/1",
                provenance=provenance,
                **values,
                **{f"{name}{CONFIDENCE_SUFFIX}": confidences[name] for name in METER_NAMES},
            )
        )
    recommendations: list[Recommendation] = []
    feedback: list[Feedback] = []
    slot_hours = (8, 13, 18, 22)
    for day in range(days):
        for slot in Slot:
            at = start + timedelta(days=day, hours=slot_hours[slot])
            if at > now:
                continue
            favourite = (int(slot) * 3 + (1 if day >= days - 7 else 0)) % N_ACTIONS
            probabilities = _probabilities(rng, favourite)
            action = ACTIONS[favourite] if rng.random() < 0.7 else rng.choice(ACTIONS)
            row = Recommendation(
                id=uuid.uuid4(),
                user_id=user_id,
                at=at,
                day=at.weekday(),
                slot=int(slot),
                neutral_meters=False,
                action=action,
                probabilities=probabilities,
                propensity=probabilities[action.index],
                temperature=1.0,
                model="rhythm-tiny",
                backend="local",
                **dict(zip(METER_NAMES, (0.6, 0.5, 0.4, 0.5, 0.4), strict=True)),
            )
            recommendations.append(row)
            if rng.random() < 0.85:
                response = rng.choices(
                    (Response.ACCEPTED, Response.IGNORED, Response.RESCHEDULED), weights=(0.6, 0.3, 0.1)
                )[0]
                feedback.append(
                    Feedback(
                        user_id=user_id,
                        recommendation_id=row.id,
                        response=response,
                        reward=response.reward,
                        created_at=at + timedelta(minutes=20),
                    )
                )
    events = [
        CalendarEvent(
            user_id=user_id,
            source="google",
            external_id=f"evt-{uuid.uuid4().hex[:12]}",
            title=title,
            starts_at=now + timedelta(days=index - 1, hours=2),
            ends_at=now + timedelta(days=index - 1, hours=3),
            action=action,
        )
        for index, (title, action) in enumerate(CALENDAR_TITLES)
    ]
    tag = uuid.uuid4().hex[:8]
    devices = [
        DeviceConnection(user_id=user_id, provider="oura", external_user_id=f"oura-{tag}", status="active"),
        DeviceConnection(
            user_id=user_id,
            provider="fitbit",
            external_user_id=f"fitbit-{tag}",
            status="needs_reconsent",
            status_reason="refresh token rejected",
        ),
    ]
    adapters = [
        Adapter(
            user_id=user_id,
            name=f"user-{tag}-v{version}",
            version=version,
            base_model="rhythm-tiny",
            uri=f"file:///adapters/{tag}/v{version}",
            status=AdapterStatus.ACTIVE if version == 3 else AdapterStatus.RETIRED,
            n_interactions=40 * version,
            created_at=now - timedelta(days=7 * (3 - version) + 1),
        )
        for version in (1, 2, 3)
    ]
    session.add_all([*snapshots, *recommendations, *events, *devices, *adapters])
    await session.flush()
    session.add_all(feedback)
    session.add_all(
        [
            FinetuneJob(
                user_id=user_id,
                status=FinetuneStatus.SUCCEEDED,
                attempt=1,
                iso_week=iso_week(now - timedelta(days=7))[0],
                finished_at=now - timedelta(days=1),
                adapter_id=adapters[-1].id,
            ),
            FinetuneJob(
                user_id=user_id,
                status=FinetuneStatus.FAILED,
                attempt=3,
                iso_week=iso_week(now)[0],
                error="out of memory on worker-2",
            ),
        ]
    )
    await session.flush()
    return {
        "meter_snapshots": len(snapshots),
        "recommendations": len(recommendations),
        "feedback": len(feedback),
        "calendar_events": len(events),
    }


async def _measure(database_url: str, days: int, requests: int) -> dict[str, Any]:
    from app.core.config import Settings
    from app.core.security import hash_token, new_token
    from app.main import create_app
    from app.models import ApiToken, User

    settings = Settings(
        env="test",  # type: ignore[arg-type]
        database_url=database_url,
        policy_backend="fallback",  # type: ignore[arg-type]
        rate_limit_enabled=False,
        log_level="WARNING",
        console_cookie_secure=False,
        admin_token="bench-admin-" + uuid.uuid4().hex,  # type: ignore[arg-type]
        secret_key="bench-secret-" + uuid.uuid4().hex * 2,  # type: ignore[arg-type]
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        token = new_token()
        async with app.state.db.sessionmaker() as session:
            user = User(timezone="Europe/Berlin")
            session.add(user)
            await session.flush()
            session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), prefix=token[:8]))
            counts = await seed_person_history(session, user.id, days=days)
            await session.commit()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            form = await client.get("/console/login")
            csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            signed_in = await client.post("/console/login", data={"token": token, "csrf_token": csrf})
            if signed_in.status_code != 303:
                raise RuntimeError(f"sign-in failed: {signed_in.status_code}")
            path = f"/console/users/{user.id}"
            for _ in range(5):  # warm-up: template compilation, connection pool
                (await client.get(path)).raise_for_status()
            timings: list[float] = []
            with Progress(transient=True) as progress:
                task = progress.add_task("rendering the person page", total=requests)
                for _ in range(requests):
                    started = time.perf_counter()
                    response = await client.get(path)
                    timings.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                    progress.advance(task)
    timings.sort()
    return {
        "days": days,
        "rows": counts,
        "requests": requests,
        "page_bytes": len(response.content),
        "p50_ms": round(statistics.median(timings), 1),
        "p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 1),
        "max_ms": round(timings[-1], 1),
    }


def console(
    database: Annotated[
        str, typer.Option(help="Postgres server to create the temporary benchmark database on.")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    days: Annotated[int, typer.Option(min=1, max=365, help="Days of history to seed.")] = 30,
    requests: Annotated[int, typer.Option(min=1, max=10_000, help="Timed renders.")] = 100,
) -> None:
    """Server-side render time of the console's person page (p50/p95/max, JSON on stdout)."""
    from app.benchmarks.api import temporary_database

    with temporary_database(database) as url:
        report = asyncio.run(_measure(url, days, requests))
    typer.echo(json.dumps(report, indent=2))
