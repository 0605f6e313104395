"""Implicit feedback: a recommended action showing up in the calendar answers the recommendation —
same slot → accepted, another slot → rescheduled — stored with source "calendar"; the app's explicit answer
always wins (replaces an inferred one; is never replaced)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from googleapiclient.http import HttpMockSequence
from sqlalchemy import select

from app.calendar import sync
from app.core.config import Settings
from app.core.db import task_session
from app.models import Feedback, Recommendation
from app.models.base import utcnow
from domain import ACTIONS, Action, Response
from tests.calendar.google import event, linked_account, ok, page
from tests.support import admin_headers_for, app_client, create_user_via_api, running_app

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
async def client(google: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(google) as app, app_client(app) as http:
        yield http


def _tomorrow(hour: int, minute: int = 0) -> datetime:
    day = utcnow().astimezone(BERLIN).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)


def _recommend(settings: Settings, user_id: uuid.UUID, action: Action, at: datetime) -> uuid.UUID:
    """A logged recommendation, as POST /v1/recommend stores it."""
    with task_session(settings.sync_database_url) as session:
        row = Recommendation(
            user_id=user_id,
            at=at,
            day=at.weekday(),
            slot=0,
            vitality=0.5,
            cognition=0.5,
            progress=0.5,
            serenity=0.5,
            connection=0.5,
            action=action,
            probabilities=[1 / len(ACTIONS)] * len(ACTIONS),
            propensity=0.1,
            temperature=1.0,
            model="rhythm-tiny",
            backend="local",
        )
        session.add(row)
        session.flush()
        return row.id


def _sync(settings: Settings, calendar_id: uuid.UUID, items: list[dict[str, object]], token: str) -> int:
    http = HttpMockSequence([ok(page(items, sync_token=token))])
    with task_session(settings.sync_database_url) as session:
        return sync.sync_calendar(session, settings, calendar_id, utcnow(), http=http).feedback


def _feedback(settings: Settings, recommendation_id: uuid.UUID) -> Feedback | None:
    with task_session(settings.sync_database_url) as session:
        return session.scalar(select(Feedback).where(Feedback.recommendation_id == recommendation_id))


@pytest.fixture
async def account(google: Settings, client: httpx.AsyncClient) -> tuple[uuid.UUID, dict[str, str], uuid.UUID]:
    user_id, headers = await create_user_via_api(client, admin_headers_for(google), "Europe/Berlin")
    with task_session(google.sync_database_url) as session:
        _, _, calendar = linked_account(session, google, user_id=user_id)
        return user_id, headers, calendar.id


async def test_same_slot_is_accepted_another_slot_is_rescheduled(
    google: Settings, account: tuple[uuid.UUID, dict[str, str], uuid.UUID]
) -> None:
    user_id, _, calendar_id = account
    evening_gym = _recommend(google, user_id, Action.EXERCISE, _tomorrow(18))
    morning_drinks = _recommend(google, user_id, Action.SOCIALIZE, _tomorrow(9))
    untouched = _recommend(google, user_id, Action.LEARN, _tomorrow(18))

    inferred = _sync(
        google,
        calendar_id,
        [
            event("gym", "Gym", _tomorrow(18, 30), 60),  # same slot (Evening) → accepted
            event(
                "drinks", "Drinks with Sam", _tomorrow(20), 120
            ),  # morning advice done at night → rescheduled
        ],
        "s1",
    )
    assert inferred == 2
    accepted = _feedback(google, evening_gym)
    assert accepted is not None
    assert (accepted.response, accepted.reward, accepted.source) == (Response.ACCEPTED, 1, "calendar")
    moved = _feedback(google, morning_drinks)
    assert moved is not None
    assert (moved.response, moved.reward, moved.source) == (Response.RESCHEDULED, -1, "calendar")
    assert moved.rescheduled_to == _tomorrow(20)
    assert _feedback(google, untouched) is None  # no LEARN event: no answer made up


async def test_an_event_outside_the_window_or_not_an_action_infers_nothing(
    google: Settings, account: tuple[uuid.UUID, dict[str, str], uuid.UUID]
) -> None:
    user_id, _, calendar_id = account
    stale = _recommend(google, user_id, Action.EXERCISE, _tomorrow(18))
    with task_session(google.sync_database_url) as session:
        row = session.get(Recommendation, stale)
        assert row is not None
        # Made and meant for two days ago: its feedback window has closed.
        row.at = row.created_at = utcnow() - timedelta(days=2)
    free = _recommend(google, user_id, Action.EXERCISE, _tomorrow(7))
    _sync(
        google,
        calendar_id,
        [
            event("gym", "Gym", utcnow() - timedelta(days=2) + timedelta(minutes=30)),
            event("run", "Run", _tomorrow(7), 45, transparency="transparent"),
        ],
        "s1",
    )
    assert _feedback(google, stale) is None and _feedback(google, free) is None


async def test_the_explicit_answer_wins(
    google: Settings, client: httpx.AsyncClient, account: tuple[uuid.UUID, dict[str, str], uuid.UUID]
) -> None:
    user_id, headers, calendar_id = account
    inferred_first = _recommend(google, user_id, Action.EXERCISE, _tomorrow(18))
    explicit_first = _recommend(google, user_id, Action.MEDITATE, _tomorrow(8))

    answer = await client.post(
        "/v1/feedback",
        headers=headers,
        json={"recommendation_id": str(explicit_first), "response": "ignored"},
    )
    assert answer.status_code == 200, answer.text
    _sync(
        google,
        calendar_id,
        [event("gym", "Gym", _tomorrow(18, 15)), event("med", "Meditation", _tomorrow(8, 30), 20)],
        "s1",
    )
    # Explicit first: the calendar never replaces it.
    kept = _feedback(google, explicit_first)
    assert kept is not None and (kept.response, kept.source) == (Response.IGNORED, "app")

    # Inferred first: the person's own answer replaces it …
    inferred = _feedback(google, inferred_first)
    assert inferred is not None and inferred.source == "calendar"
    answer = await client.post(
        "/v1/feedback",
        headers=headers,
        json={"recommendation_id": str(inferred_first), "response": "ignored"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"recommendation_id": str(inferred_first), "response": "ignored", "reward": -1}
    replaced = _feedback(google, inferred_first)
    assert replaced is not None and (replaced.response, replaced.reward, replaced.source) == (
        Response.IGNORED,
        -1,
        "app",
    )
    # … and from then on the existing rules hold: a different explicit answer is a conflict …
    conflict = await client.post(
        "/v1/feedback",
        headers=headers,
        json={"recommendation_id": str(inferred_first), "response": "accepted"},
    )
    assert conflict.status_code == 409
    # … and a later sync with the event moved does not touch it.
    _sync(google, calendar_id, [event("gym", "Gym", _tomorrow(19), updated=utcnow())], "s2")
    again = _feedback(google, inferred_first)
    assert again is not None and (again.response, again.source) == (Response.IGNORED, "app")
