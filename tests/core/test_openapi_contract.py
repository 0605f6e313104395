"""The OpenAPI document tells the truth: undocumented answers and schema-only rules (issue 10).

The schemathesis run is the yardstick: every check, a fixed seed, bounded examples, once with a user token and
once with the admin token, against the real app served by uvicorn on a free loopback port.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.core.config import Settings
from app.main import _UNDECODABLE_BODY, create_app
from tests.core.test_errors import assert_error
from tests.support import CreateUser, admin_headers_for

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


async def test_undecodable_body_is_a_documented_400(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    _, headers = await create_user()
    response = await client.post(
        "/v1/recommend", content=b'{"at": "\xff"}', headers={**headers, "content-type": "application/json"}
    )
    assert_error(response, 400, "bad_request")
    paths = (await client.get("/openapi.json")).json()["paths"]
    with_body = [(path, method, op) for path, item in paths.items() for method, op in item.items()]
    with_body = [entry for entry in with_body if "requestBody" in entry[2]]
    assert {(path, method) for path, method, _ in with_body} >= {
        ("/v1/recommend", "post"),
        ("/v1/feedback", "post"),
        ("/v1/users", "post"),
    }
    for path, method, operation in with_body:
        assert "400" in operation["responses"], (method, path)
    for path, item in paths.items():
        for method, operation in item.items():
            if "requestBody" not in operation:
                # No body, no undecodable-body 400 (an operation may still document a 400 of its own).
                documented = operation["responses"].get("400", {}).get("description")
                assert documented != _UNDECODABLE_BODY["description"], (method, path)


async def test_rescheduled_to_rule_is_in_the_schema_and_enforced(
    client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["FeedbackCreate"]
    branches = schema["oneOf"]
    assert any(b["properties"].get("rescheduled_to") == {"type": "null"} for b in branches)
    assert any(b["properties"]["response"] == {"const": "rescheduled"} for b in branches)
    _, headers = await create_user()
    recommendation_id = (await client.post("/v1/recommend", json={}, headers=headers)).json()[
        "recommendation_id"
    ]
    wrong = {"recommendation_id": recommendation_id, "response": "accepted", "rescheduled_to": None}
    # null stays accepted with any response (the accepted JSON did not change) …
    assert (await client.post("/v1/feedback", json=wrong, headers=headers)).status_code == 200
    # … a time only with "rescheduled".
    wrong["rescheduled_to"] = "2026-01-01T00:00:00Z"
    assert_error(await client.post("/v1/feedback", json=wrong, headers=headers), 422, "validation_error")


@pytest.fixture
def served(settings: Settings, clean_database: str) -> Iterator[str]:
    """The app (fallback policy: the model is not under test) on a free loopback port; yields its base URL."""
    app = create_app(settings.model_copy(update={"policy_backend": "fallback", "rate_limit_enabled": False}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_schemathesis_finds_nothing(served: str, settings: Settings, tmp_path: Path) -> None:
    """All checks, seed 1, at most 20 examples per operation, as a user and as the admin.

    One check is excluded: ``positive_data_acceptance``. The relative time bound (RHYTHM_MAX_CLOCK_SKEW) and
    the range rules of the time filters (``to`` after ``from``, the calendar's 62 days) are stated in the
    schema only in words, and schemathesis sends far-off instants (year 2000) to the ``from``/``to`` filters
    of ``GET /v1/users/me/meters`` and ``/calendar-events`` and to ``/v1/ingest/signals`` as valid data; the
    422s it gets are the documented answer, checked by the bounds' own tests (tests/core/test_timebounds.py,
    tests/meters/test_api.py, tests/calendar/test_events_api.py). Every other check (no 5xx, conformance,
    negative data rejected …) still runs on every operation.
    """
    admin = admin_headers_for(settings)
    created = httpx.post(f"{served}/v1/users", json={"timezone": "Europe/Berlin"}, headers=admin)
    assert created.status_code == 201
    for label, token in (
        ("user", created.json()["token"]),
        ("admin", settings.admin_token.get_secret_value()),
    ):
        command = [
            str(SCHEMATHESIS),
            "run",
            f"{served}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--seed",
            "1",
            "--max-examples",
            "20",
            "--generation-database",
            "none",
            "--no-color",
            "-H",
            f"Authorization: Bearer {token}",
        ]
        result = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
        )
        assert result.returncode == 0, f"schemathesis as {label}:\n{result.stdout[-6000:]}\n{result.stderr}"
        assert "passed" in result.stdout
