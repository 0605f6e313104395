"""Google Tasks pull with ``HttpMockSequence``: every list and page, completed / hidden / deleted included,
then incremental with ``updatedMin``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

from googleapiclient.http import HttpMockSequence
from sqlalchemy import select

from app.benchmarks.calendar_api import rfc3339
from app.calendar import runner
from app.core.config import Settings
from app.core.db import task_session
from app.models import DeviceConnection, GoogleTask
from tests.calendar.google import linked_account, ok

NOW = datetime.now(UTC).replace(microsecond=0)


def _task(task_id: str, title: str, updated: datetime, **extra: Any) -> dict[str, Any]:
    body = {
        "kind": "tasks#task",
        "id": task_id,
        "etag": '"e"',
        "title": title,
        "updated": rfc3339(updated),
        "selfLink": f"https://www.googleapis.com/tasks/v1/lists/L1/tasks/{task_id}",
        "position": "00000000000000000001",
        "status": "needsAction",
        "links": [],
        "webViewLink": f"https://tasks.google.com/task/{task_id}",
    }
    body.update(extra)
    return body


def _lists() -> tuple[dict[str, str], str]:
    return ok(
        {
            "kind": "tasks#taskLists",
            "etag": '"l"',
            "items": [{"kind": "tasks#taskList", "id": "L1", "title": "My Tasks", "updated": rfc3339(NOW)}],
        }
    )


def test_pull_every_page_then_incrementally(google: Settings) -> None:
    with task_session(google.sync_database_url) as session:
        user, connection, _ = linked_account(session, google)
        user_id, connection_id = user.id, connection.id
    due = rfc3339(datetime(2026, 12, 10, tzinfo=UTC))  # Tasks keeps only the date: midnight UTC
    first = HttpMockSequence(
        [
            _lists(),
            ok(
                {
                    "kind": "tasks#tasks",
                    "items": [_task("t1", "File taxes", NOW - timedelta(hours=2), due=due)],
                    "nextPageToken": "p2",
                }
            ),
            ok(
                {
                    "kind": "tasks#tasks",
                    "items": [
                        _task(
                            "t2",
                            "Call mum",
                            NOW - timedelta(hours=1),
                            status="completed",
                            completed=rfc3339(NOW - timedelta(hours=1)),
                            hidden=True,
                        ),
                        _task("t3", "Old idea", NOW - timedelta(hours=1), deleted=True),
                    ],
                }
            ),
        ]
    )
    assert runner.run_task_pulls(google, NOW, http=first) == 3
    (_, _, _, _), (first_uri, *_), (second_uri, *_) = first.request_sequence
    query = parse_qs(urlparse(first_uri).query)
    assert query["showCompleted"] == query["showHidden"] == query["showDeleted"] == ["true"]
    assert "updatedMin" not in query
    assert parse_qs(urlparse(second_uri).query)["pageToken"] == ["p2"]

    later = NOW + timedelta(minutes=15)
    second = HttpMockSequence(
        [
            _lists(),
            ok(
                {
                    "kind": "tasks#tasks",
                    "items": [
                        _task(
                            "t1",
                            "File taxes",
                            NOW - timedelta(minutes=1),
                            status="completed",
                            completed=rfc3339(NOW),
                            due=due,
                        ),
                        # An older copy than the stored one never wins.
                        _task("t2", "Call mum (stale)", NOW - timedelta(days=1)),
                    ],
                }
            ),
        ]
    )
    runner.run_task_pulls(google, later, http=second)
    query = parse_qs(urlparse(second.request_sequence[1][0]).query)
    updated_min = datetime.fromisoformat(query["updatedMin"][0].replace("Z", "+00:00"))
    assert NOW - timedelta(minutes=5) < updated_min < NOW  # the previous pull's start, with an overlap

    with task_session(google.sync_database_url) as session:
        tasks = {
            t.task_id: t
            for t in session.execute(select(GoogleTask).where(GoogleTask.user_id == user_id)).scalars()
        }
        assert tasks["t1"].status == "completed" and tasks["t1"].due == date(2026, 12, 10)
        assert tasks["t2"].title == "Call mum" and tasks["t2"].hidden and tasks["t2"].completed_at is not None
        assert tasks["t3"].deleted
        stored = session.get(DeviceConnection, connection_id)
        assert stored is not None and "google_tasks_updated_min" in json.dumps(stored.provider_data)
