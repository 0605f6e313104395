"""Production logs are JSON lines carrying the request id the client sees in ``X-Request-ID``."""

from __future__ import annotations

import json

import pytest

from app.core.config import Settings
from tests.support import app_client, running_app


async def test_json_access_log_with_request_id(settings: Settings, capfd: pytest.CaptureFixture[str]) -> None:
    json_settings = settings.model_copy(update={"log_json": True, "log_level": "INFO"})
    async with running_app(json_settings) as app, app_client(app) as client:
        capfd.readouterr()
        response = await client.get("/healthz")
    request_id = response.headers["x-request-id"]
    records = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    access = [record for record in records if record.get("event") == "request"]
    assert access, records
    assert access[-1]["request_id"] == request_id
    assert access[-1]["route"] == "/healthz"
    assert access[-1]["status"] == 200
    assert access[-1]["level"] == "info"
