"""The calendar classifier: accuracy on the labelled sets, normalisation, languages, eventType, skips, CLI."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from app.cli import app
from bridges.actions import CalendarEvent, InvalidEvent, classify, from_google_event, normalize
from domain import Action

DATA = Path(__file__).resolve().parents[1] / "data"


def _load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def _event(row: dict[str, Any]) -> CalendarEvent:
    start = row.get("start")
    return CalendarEvent(
        title=row["title"],
        description=row.get("description", ""),
        event_type=row.get("event_type", "default"),
        attendees=row.get("attendees", 0),
        start=datetime.fromisoformat(start) if start else None,
        minutes=row.get("minutes"),
        all_day=row.get("all_day", False),
        transparent=row.get("transparency") == "transparent",
        status=row.get("status", "confirmed"),
        declined=row.get("declined", False),
    )


def _score(rows: list[dict[str, Any]]) -> tuple[float, str]:
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    confusion: Counter[tuple[str, str]] = Counter()
    for row in rows:
        verdict = classify(_event(row))
        want = row["label"] or "NOT_AN_ACTION"
        got = verdict.action.value if verdict.action else "NOT_AN_ACTION"
        totals[want] += 1
        if got == want:
            hits[want] += 1
        else:
            confusion[(want, got)] += 1
    lines = [f"{label:<14} {hits[label]}/{n}" for label, n in sorted(totals.items())]
    lines += [f"confused {w} -> {g}: {n}" for (w, g), n in confusion.most_common()]
    return sum(hits.values()) / len(rows), "\n".join(lines)


def test_labelled_sets_are_large_multilingual_and_split() -> None:
    dev, heldout = _load("calendar_events_dev.jsonl"), _load("calendar_events_heldout.jsonl")
    assert len(dev) + len(heldout) >= 300
    assert {r["split"] for r in dev} == {"dev"} and {r["split"] for r in heldout} == {"heldout"}
    assert {"en", "de", "es"} <= {r["lang"] for r in dev}
    labels = {r["label"] for r in dev + heldout}
    assert labels == {a.value for a in Action} | {None}


def test_heldout_accuracy_is_at_least_90_percent() -> None:
    accuracy, report = _score(_load("calendar_events_heldout.jsonl"))
    print(f"held-out accuracy {accuracy:.3f}\n{report}")
    assert accuracy >= 0.90, report


def test_dev_accuracy() -> None:
    accuracy, report = _score(_load("calendar_events_dev.jsonl"))
    print(f"dev accuracy {accuracy:.3f}\n{report}")
    assert accuracy >= 0.90, report


# Titles outside the original 335, written later (tests/data/README.md says in what order). ``fresh`` and
# ``fresh2`` were each scored once before the rules were changed to cover their misses (78/100 and 42/54), so
# they are now tuned-on sets and guard against regressions. ``fresh3`` was written after the last rule change
# and scored once (33/40); the rules were not changed for it, so its floor is what a new title can expect.
@pytest.mark.parametrize(
    ("name", "floor"),
    [
        ("calendar_events_fresh.jsonl", 0.90),
        ("calendar_events_fresh2.jsonl", 0.90),
        ("calendar_events_fresh3.jsonl", 0.80),
    ],
)
def test_fresh_titles(name: str, floor: float) -> None:
    rows = _load(name)
    assert len({r["title"].casefold() for r in rows}) == len(rows)
    earlier = {
        r["title"].casefold()
        for r in _load("calendar_events_dev.jsonl") + _load("calendar_events_heldout.jsonl")
    }
    assert not earlier & {r["title"].casefold() for r in rows}, "fresh titles must be new"
    accuracy, report = _score(rows)
    print(f"{name} accuracy {accuracy:.3f}\n{report}")
    assert accuracy >= floor, report
    # The same titles alone, as `rhythm classify TITLE` sees them: no time, no guests to lean on.
    title_only = [{"title": r["title"], "label": r["label"]} for r in rows]
    accuracy, report = _score(title_only)
    assert accuracy >= floor - 0.05, report


def test_normalisation_folds_case_accents_emoji_and_one_on_ones() -> None:
    assert normalize("REUNIÓN!!  Fußball 🏃") == "reunion fussball run"
    assert normalize("Kaffee mit Jüli ☕") == "kaffee mit juli coffee"
    assert normalize("1-on-1 w/ Anna") == normalize("1:1 with Anna") == "oneonone with anna"


@pytest.mark.parametrize(
    ("title", "action"),
    [
        ("Team dinner", Action.SOCIALIZE),
        ("1:1 with Anna", Action.ADMIN_WORK),
        ("GYM!!", Action.EXERCISE),
        ("Laufen", Action.EXERCISE),
        ("correr", Action.EXERCISE),
        ("Kids pickup", Action.FAMILY_TIME),
        ("Abendessen mit Familie", Action.FAMILY_TIME),
        ("Netflix", Action.BINGE_WATCH),
        ("Englischkurs", Action.LEARN),  # German compound matched by its tail
        ("Méditation", Action.MEDITATE),
        ("siesta", Action.SLEEP),
        ("Peluquería", Action.ME_TIME),
        ("Lunch", Action.ME_TIME),
        ("Lunch with Sarah", Action.SOCIALIZE),
        ("Early night", Action.SLEEP),
        ("Lie-in", Action.SLEEP),
        ("Acostarme pronto", Action.SLEEP),
        ("Design review", Action.DEEP_WORK),
        ("Exam prep", Action.LEARN),
        ("Dentist", Action.ADMIN_WORK),
        ("Car service", Action.ADMIN_WORK),
        ("Book flights to Rome", Action.ADMIN_WORK),
        ("Zahnspange nachstellen", Action.ADMIN_WORK),
        ("Winterreifen montieren", Action.ADMIN_WORK),
        ("Revisión del coche", Action.ADMIN_WORK),
        ("Revise for midterms", Action.LEARN),
        ("Severance S2E4", Action.BINGE_WATCH),
        ("Kinoabend", Action.BINGE_WATCH),  # compound head "kino"
        ("Riunione settimanale", Action.ADMIN_WORK),
        ("Boodschappen doen", Action.ADMIN_WORK),
    ],
)
def test_multilingual_phrasing(title: str, action: Action) -> None:
    assert classify(CalendarEvent(title=title)).action is action


def test_event_type_and_structure() -> None:
    focus = classify(CalendarEvent(title="Block", event_type="focusTime"))
    assert focus.action is Action.DEEP_WORK and focus.reason == "eventType focusTime"
    monday_10 = datetime(2026, 3, 2, 10, 0)
    meeting = classify(CalendarEvent(title="Project Atlas", attendees=6, start=monday_10, minutes=60))
    assert meeting.action is Action.ADMIN_WORK
    saturday_19 = datetime(2026, 3, 7, 19, 0)
    assert classify(CalendarEvent(title="Atlas", attendees=6, start=saturday_19)).action is Action.SOCIALIZE
    late = datetime(2026, 3, 3, 23, 0)
    assert classify(CalendarEvent(title="Offline", start=late, minutes=420)).action is Action.SLEEP
    assert classify(CalendarEvent(title="Offline", start=late, minutes=45)).action is Action.ME_TIME
    ooo = classify(CalendarEvent(title="Out with the kids", event_type="outOfOffice", start=monday_10))
    assert ooo.action is Action.FAMILY_TIME
    assert 0.0 <= meeting.confidence < classify(CalendarEvent(title="Gym")).confidence <= 1.0


def test_a_group_in_working_hours_is_a_meeting_even_with_a_work_word() -> None:
    # What a simulated calendar showed: "Design review" with four guests at 15:00 was called DEEP_WORK.
    wednesday_15 = datetime(2026, 3, 4, 15, 0)
    together = CalendarEvent(title="Design review", attendees=5, start=wednesday_15, minutes=60)
    alone = CalendarEvent(title="Design review", start=wednesday_15, minutes=60)
    assert classify(together).action is Action.ADMIN_WORK
    assert classify(alone).action is Action.DEEP_WORK
    # An activity word still beats the guest list.
    lunch = CalendarEvent(title="Team lunch", attendees=6, start=wednesday_15.replace(hour=12), minutes=60)
    assert classify(lunch).action is Action.SOCIALIZE
    # And a one-hour "Early night" block at 22:00 is sleep, not personal time.
    night = CalendarEvent(title="Early night", start=wednesday_15.replace(hour=22), minutes=60)
    assert classify(night).action is Action.SLEEP


@pytest.mark.parametrize(
    ("event", "context"),
    [
        (CalendarEvent(title="Gym", transparent=True), None),
        (CalendarEvent(title="Home", event_type="workingLocation"), None),
        (CalendarEvent(title="Anna's birthday", event_type="birthday", all_day=True), None),
        (CalendarEvent(title="Vacation", event_type="outOfOffice", all_day=True), "out_of_office"),
        (CalendarEvent(title="Gym", status="cancelled"), None),
        (CalendarEvent(title="Sprint review", attendees=8, declined=True), None),
        (CalendarEvent(title="Flight to Lisbon"), None),
    ],
)
def test_not_an_action(event: CalendarEvent, context: str | None) -> None:
    verdict = classify(event)
    assert verdict.action is None and not verdict.is_action
    assert verdict.context == context


BERLIN = ZoneInfo("Europe/Berlin")


def test_from_google_event_reads_a_timed_meeting() -> None:
    resource = {
        "kind": "calendar#event",
        "id": "5v1n3k9q_20260302T090000Z",
        "status": "confirmed",
        "summary": "Sprint planning",
        "eventType": "default",
        "start": {"dateTime": "2026-03-02T09:00:00Z", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-02T10:30:00Z", "timeZone": "UTC"},
        "organizer": {"email": "lead@example.com"},
        "recurringEventId": "5v1n3k9q",
        "attendees": [
            {"email": "me@example.com", "self": True, "responseStatus": "accepted"},
            {"email": "lead@example.com", "organizer": True, "responseStatus": "accepted"},
            {"email": "dev@example.com", "responseStatus": "needsAction"},
            {"email": "room-4@resource.calendar.google.com", "resource": True, "responseStatus": "accepted"},
        ],
    }
    event = from_google_event(resource, BERLIN)
    assert event.start == datetime(2026, 3, 2, 10, 0, tzinfo=BERLIN) and event.start.hour == 10
    assert (event.minutes, event.attendees, event.organizer_self) == (90, 3, False)
    assert event.recurring_event_id == "5v1n3k9q"
    assert classify(event).action is Action.ADMIN_WORK


def test_from_google_event_all_day_declined_and_invalid() -> None:
    all_day = from_google_event(
        {"summary": "Urlaub", "eventType": "outOfOffice", "start": {"date": "2026-03-06"},
         "end": {"date": "2026-03-09"}, "transparency": "opaque"},
        BERLIN,
    )  # fmt: skip
    assert all_day.all_day and all_day.minutes == 3 * 24 * 60
    assert classify(all_day).context == "out_of_office"
    declined = from_google_event(
        {"summary": "Retro", "start": {"dateTime": "2026-03-06T15:00:00+01:00"},
         "end": {"dateTime": "2026-03-06T16:00:00+01:00"},
         "attendees": [{"email": "me@example.com", "self": True, "responseStatus": "declined"}]},
        BERLIN,
    )  # fmt: skip
    assert declined.declined and classify(declined).action is None
    assert from_google_event({"id": "x", "status": "cancelled"}, BERLIN).status == "cancelled"
    with pytest.raises(InvalidEvent):
        from_google_event({"summary": "x"}, BERLIN)
    with pytest.raises(InvalidEvent):
        from_google_event({"summary": "x", "start": {"dateTime": "tomorrow"}}, BERLIN)


def test_cli_prints_json_in_input_order_and_rejects_bad_input() -> None:
    runner = CliRunner()
    titles = ["Netflix", "Gym", "1:1 with Anna", "Home office"]
    result = runner.invoke(app, ["classify", *titles, "--json", "--at", "2026-03-02T10:00"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["title"] for r in rows] == titles
    assert [r["action"] for r in rows[:3]] == ["BINGE_WATCH", "EXERCISE", "ADMIN_WORK"]
    assert all(r["source"] == "rule" and 0 <= r["confidence"] <= 1 for r in rows)
    plain = runner.invoke(app, ["classify", "Status", "--event-type", "workingLocation"])
    assert plain.exit_code == 0 and "not an action" in plain.output
    assert runner.invoke(app, ["classify", "Gym", "--at", "nope"]).exit_code == 2
    assert runner.invoke(app, ["classify", "Gym", "--event-type", "party"]).exit_code == 2
    assert runner.invoke(app, ["classify", "Gym", "--minutes", "0"]).exit_code == 2
