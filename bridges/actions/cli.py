"""``rhythm classify TITLE… [--json] [--at ISO] [--minutes N] [--attendees N] [--event-type T]``.

Classifies each title as one calendar event with the same start, duration, guest count and eventType, and
prints one line per title, or with ``--json`` one JSON list in input order:
``[{"title", "action", "confidence", "source"}]`` (``action`` is ``null`` for "not an action").
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer

from .classifier import CalendarEvent
from .classifier import classify as classify_event
from .google import EVENT_TYPES


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 date-time (e.g. 2026-03-02T19:30)") from exc


def _check_event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(EVENT_TYPES)}")
    return value


def classify(
    titles: Annotated[list[str], typer.Argument(help="Event titles, one event each.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list in input order.")] = False,
    at: Annotated[
        str | None, typer.Option("--at", help="Local start time, ISO 8601 (e.g. 2026-03-02T19:30).")
    ] = None,
    minutes: Annotated[int | None, typer.Option(min=1, help="Duration in minutes.")] = None,
    attendees: Annotated[int, typer.Option(min=0, help="People on the guest list, you included.")] = 0,
    event_type: Annotated[
        str, typer.Option("--event-type", help=f"Google eventType: {', '.join(EVENT_TYPES)}.")
    ] = "default",
) -> None:
    """Classify calendar event titles into actions and print action and confidence per title."""
    start = _parse_at(at)
    event_type = _check_event_type(event_type)
    results = []
    for title in titles:
        verdict = classify_event(
            CalendarEvent(
                title=title, start=start, minutes=minutes, attendees=attendees, event_type=event_type
            )
        )
        action = verdict.action.value if verdict.action is not None else None
        results.append(
            {"title": title, "action": action, "confidence": verdict.confidence, "source": verdict.source}
        )
        if not as_json:
            shown = action or "not an action"
            typer.echo(f"{shown:<13} {verdict.confidence:.2f}  {title}  ({verdict.reason})")
    if as_json:
        typer.echo(json.dumps(results, ensure_ascii=False))
