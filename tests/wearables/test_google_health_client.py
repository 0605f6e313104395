"""Google Health's reads through google-api-python-client, with the client's own ``HttpMockSequence``: the
request it builds from the bundled discovery document, pagination, and 404 / 403 answers. (The same client
against a local server speaking the REST API: ``test_fetch_after_notify``.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from googleapiclient.http import HttpMockSequence

from bridges.google_health.client import health_service, list_data_points
from bridges.google_health.provider import points_to_readings
from bridges.meters.signals import SignalKind
from bridges.webhooks import UnmappableEvent

FILTER = (
    'sleep.interval.end_time >= "2026-11-30T00:00:00Z" AND sleep.interval.end_time < "2026-12-02T00:00:00Z"'
)


def sleep_point(end: str, minutes: str, main: bool = True) -> dict[str, object]:
    return {
        "name": f"users/me/dataTypes/sleep/dataPoints/{end}",
        "sleep": {
            "interval": {"startTime": "2026-11-30T23:00:00Z", "endTime": end},
            "metadata": {"mainSleep": main, "nap": not main},
            "summary": {"minutesAsleep": minutes, "minutesAwake": "25"},
        },
    }


def test_pages_are_followed_and_mapped() -> None:
    http = HttpMockSequence(
        [
            (
                {"status": "200"},
                json.dumps(
                    {"dataPoints": [sleep_point("2026-12-01T07:00:00Z", "430")], "nextPageToken": "p2"}
                ),
            ),
            (
                {"status": "200"},
                json.dumps({"dataPoints": [sleep_point("2026-12-01T15:00:00Z", "40", main=False)]}),
            ),
        ]
    )

    points = list_data_points(health_service(http), "sleep", FILTER, 100, 10)
    readings = points_to_readings(points)

    assert len(points) == 2
    # The nap is no night's sleep: only the main sleep's two readings.
    assert [(r.kind, r.value, r.observed_at) for r in readings] == [
        (SignalKind.SLEEP_DURATION, 430.0, datetime(2026, 12, 1, 7, tzinfo=UTC)),
        (SignalKind.SLEEP_AWAKE, 25.0, datetime(2026, 12, 1, 7, tzinfo=UTC)),
    ]


def test_the_request_follows_the_discovery_document() -> None:
    http = HttpMockSequence([({"status": "200"}, "echo_request_uri")])
    service = health_service(http)
    request = (
        service.users()
        .dataTypes()
        .dataPoints()
        .list(parent="users/me/dataTypes/sleep", filter=FILTER, pageSize=100)
    )
    parts = urlsplit(request.uri)
    assert parts.path == "/v4/users/me/dataTypes/sleep/dataPoints"
    assert parse_qs(parts.query)["filter"] == [FILTER]


def test_not_found_is_nothing_and_forbidden_is_not_retried() -> None:
    missing = HttpMockSequence([({"status": "404"}, json.dumps({"error": {"code": 404}}))])
    assert list_data_points(health_service(missing), "sleep", FILTER, 100, 10) == []
    forbidden = HttpMockSequence(
        [({"status": "403"}, json.dumps({"error": {"code": 403, "status": "PERMISSION_DENIED"}}))]
    )
    with pytest.raises(UnmappableEvent, match="403"):
        list_data_points(health_service(forbidden), "sleep", FILTER, 100, 10)
