"""The calendar and Tasks meter inputs from synced rows (``CalendarContextSource``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import task_session
from app.meters.service import recompute
from app.models import CalendarEvent, GoogleTask
from bridges.google.context import CalendarContextSource, context_inputs
from bridges.meters.signals import SignalKind
from domain import Action
from tests.calendar.google import linked_account

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 2, 14, 0, tzinfo=BERLIN)  # a Wednesday
TODAY = NOW.date()


def _at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    return datetime.combine(TODAY + timedelta(days=days), datetime.min.time(), tzinfo=BERLIN).replace(
        hour=hour, minute=minute
    )


def _event(
    session: Session, user_id: object, title: str, start: datetime, end: datetime, **kw: object
) -> None:
    session.add(
        CalendarEvent(
            user_id=user_id,
            source="google",
            external_id=title + start.isoformat(),
            title=title,
            starts_at=start,
            ends_at=end,
            **kw,
        )
    )


def _task(session: Session, user: object, connection: object, name: str, **kw: object) -> None:
    session.add(
        GoogleTask(
            user_id=user,
            connection_id=connection,
            tasklist_id="l",
            task_id=name,
            title=name,
            updated=NOW,
            **{"status": "needsAction", **kw},
        )
    )


def test_a_working_day(google: Settings) -> None:
    with task_session(google.sync_database_url) as session:
        user, connection, _ = linked_account(session, google, timezone="Europe/Berlin")
        u = user.id
        _event(session, u, "Standup", _at(9), _at(10), attendees=3, action=Action.ADMIN_WORK)
        _event(session, u, "Deep work", _at(10), _at(12), action=Action.DEEP_WORK)
        _event(session, u, "1:1 Ben", _at(13), _at(13, 50), attendees=2, action=Action.ADMIN_WORK)
        _event(session, u, "Write report", _at(13, 55), _at(14, 30), action=Action.DEEP_WORK)
        _event(session, u, "Hold", _at(15), _at(16), transparent=True)
        _event(session, u, "Dinner with Sam", _at(19, days=-2), _at(21, days=-2), action=Action.SOCIALIZE)
        _event(session, u, "Kids' recital", _at(17, days=-1), _at(18, days=-1), action=Action.FAMILY_TIME)
        _event(session, u, "Old party", _at(20, days=-8), _at(23, days=-8), action=Action.SOCIALIZE)
        _task(session, u, connection.id, "done-yesterday", due=TODAY - timedelta(days=1), status="completed")
        _task(session, u, connection.id, "overdue", due=TODAY - timedelta(days=3))
        _task(session, u, connection.id, "later", due=TODAY + timedelta(days=10))
        _task(
            session, u, connection.id, "done-no-due", status="completed", completed_at=NOW - timedelta(days=2)
        )
        _task(session, u, connection.id, "deleted", due=TODAY, deleted=True)
        session.flush()
        inputs = CalendarContextSource(session).inputs(u, NOW)
        readings = {r.kind: r.value for r in CalendarContextSource(session).context_readings(u, NOW)}

    assert inputs.calendar_density == round(100 * 265 / 540, 2)  # 60 + 120 + 50 + 35 busy minutes of 540
    assert inputs.meeting_density == round(100 * 110 / 540, 2)  # standup + 1:1
    assert inputs.time_since_last_break == 60.0  # 12:00-13:00 was the last gap ≥ 15 min; 13:50-13:55 is not
    assert inputs.focus_time == 155.0
    assert inputs.social_events_7d == 2.0
    # Dinner 43 h ago, the recital 21 h ago: 2^(-43/24) + 2^(-21/24); the party 8 days ago counts in neither.
    assert inputs.social_recency == round(2 ** (-43 / 24) + 2 ** (-21 / 24), 3) == 0.834
    assert inputs.task_completion_rate == round(100 * 2 / 3, 2)
    assert inputs.deadline_proximity == 0.0  # something is overdue
    assert readings[SignalKind.CALENDAR_DENSITY] == inputs.calendar_density
    assert len(readings) == 8


def test_an_out_of_office_day_and_nothing_known(google: Settings) -> None:
    with task_session(google.sync_database_url) as session:
        user, connection, _ = linked_account(session, google, timezone="Europe/Berlin")
        _event(
            session,
            user.id,
            "Vacation",
            _at(0),
            _at(0, days=3),
            all_day=True,
            context="out_of_office",
        )
        _task(session, user.id, connection.id, "later", due=date(2026, 12, 9))
        session.flush()
        inputs = CalendarContextSource(session).inputs(user.id, NOW)
        assert (inputs.calendar_density, inputs.meeting_density, inputs.time_since_last_break) == (
            0.0,
            0.0,
            0.0,
        )
        assert inputs.deadline_proximity == 7.0 and inputs.task_completion_rate is None

        stranger, _, calendar = linked_account(session, google)
        session.delete(calendar)
        session.flush()
        # No calendar synced, no tasks: nothing is known, so nothing is reported.
        assert CalendarContextSource(session).context_readings(stranger.id, NOW) == []


def test_the_meters_recompute_reads_the_calendar(google: Settings) -> None:
    """The inputs reach the stored snapshot: with no wearable at all, a synced calendar alone gives Connection
    (social events) and Serenity (meeting density) a value, and the provenance names the calendar inputs."""
    with task_session(google.sync_database_url) as session:
        user, _, _ = linked_account(session, google, timezone="Europe/Berlin")
        u = user.id
        _event(session, u, "Standup", _at(9), _at(10), attendees=3, action=Action.ADMIN_WORK)
        _event(session, u, "Dinner with Sam", _at(19, days=-2), _at(21, days=-2), action=Action.SOCIALIZE)
        _event(session, u, "Board games", _at(19, days=-4), _at(22, days=-4), action=Action.SOCIALIZE)
        session.flush()
        snapshot = recompute(session, u, NOW)
        assert snapshot is not None and snapshot.provenance is not None
        meters = snapshot.provenance["meters"]
        connection_inputs = {i["kind"] for i in meters["connection"]["inputs"]}
        serenity_inputs = {i["kind"] for i in meters["serenity"]["inputs"]}
        assert {SignalKind.SOCIAL_EVENTS_7D.value, SignalKind.SOCIAL_RECENCY.value} <= connection_inputs
        assert SignalKind.MEETING_DENSITY.value in serenity_inputs
        assert meters["connection"]["value"] is not None and meters["connection"]["confidence"] > 0
        # Nothing from a wearable: Vitality stays missing rather than made up.
        assert meters["vitality"]["value"] is None


@dataclass(frozen=True)
class _Event:
    starts_at: datetime
    ends_at: datetime
    action: Action | None = None
    attendees: int = 0
    all_day: bool = False
    transparent: bool = False
    event_type: str | None = "default"
    context: str | None = None


@dataclass(frozen=True)
class _Task:
    status: str
    due: date | None = None
    completed_at: datetime | None = None


def test_the_pure_computation_is_the_meters_jobs(google: Settings) -> None:
    """``context_inputs`` over plain records (as ``rhythm simulate`` passes them) gives the numbers the meters
    job reads from the synced rows, also when it is handed events the job's query leaves out."""
    events = [
        _Event(_at(9), _at(10), Action.ADMIN_WORK, attendees=3),
        _Event(_at(10), _at(12), Action.DEEP_WORK),
        _Event(_at(13, 30), _at(14, 30), Action.DEEP_WORK, event_type="focusTime"),
        _Event(_at(15), _at(16), transparent=True),
        _Event(_at(19, days=-2), _at(21, days=-2), Action.SOCIALIZE),
        _Event(_at(17, days=-6), _at(18, days=-6), Action.FAMILY_TIME, attendees=2),
        _Event(_at(20, days=-8), _at(23, days=-8), Action.SOCIALIZE),  # more than a week ago
        _Event(_at(19, days=1), _at(21, days=1), Action.SOCIALIZE),  # tomorrow
        _Event(_at(0, days=1), _at(0, days=3), all_day=True, context="out_of_office"),  # from tomorrow
    ]
    tasks = [
        _Task("completed", due=TODAY - timedelta(days=2), completed_at=NOW - timedelta(days=2)),
        _Task("needsAction", due=TODAY - timedelta(days=1)),
        _Task("needsAction", due=TODAY + timedelta(days=4)),
        _Task("completed", completed_at=NOW - timedelta(days=9)),
    ]
    with task_session(google.sync_database_url) as session:
        user, connection, _ = linked_account(session, google, timezone="Europe/Berlin")
        for n, e in enumerate(events):
            _event(
                session,
                user.id,
                f"e{n}",
                e.starts_at,
                e.ends_at,
                **{
                    k: getattr(e, k)
                    for k in ("action", "attendees", "all_day", "transparent", "event_type", "context")
                },
            )
        for n, t in enumerate(tasks):
            _task(
                session,
                user.id,
                connection.id,
                f"t{n}",
                status=t.status,
                due=t.due,
                completed_at=t.completed_at,
            )
        session.flush()
        from_rows = CalendarContextSource(session).inputs(user.id, NOW)

    pure = context_inputs(NOW, BERLIN, events, tasks)
    assert pure == from_rows
    assert pure.social_events_7d == 2.0 and pure.focus_time == 180.0
    assert pure.calendar_density == round(100 * 240 / 540, 2)  # the hold is free time
    assert context_inputs(NOW, BERLIN, None).readings() == []  # no calendar, no tasks: nothing known
