"""End to end with a real Celery worker: a WHOOP notification is accepted, a worker fetches the recovery from
the local provider server; while the provider fails, the event stays pending-then-failed, visible to operators
and retried with backoff, and once the provider answers it is handled, once."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.core.config import Settings
from tests.support import admin_headers_for, celery_process
from tests.wearables.payloads import WHOOP_USER, body_of, whoop_event, whoop_headers
from tests.wearables.provider_server import Answer, ProviderServer
from tests.wearables.support import NewUser, event, kinds, link, readings
from tests.wearables.test_fetch_after_notify import SLEEP, serve_whoop
from tests.webhooks.terra import purge_broker

ENV_SETTINGS = (
    "database_url",
    "broker_url",
    "broker_key_prefix",
    "secret_key",
    "whoop_client_id",
    "whoop_client_secret",
    "whoop_api_base_url",
    "whoop_token_url",
    "webhook_retry_backoff",
    "webhook_retry_backoff_max",
    "provider_api_max_retries",
)


@contextmanager
def wearable_worker(settings: Settings, log_dir: Path) -> Iterator[None]:
    """A real worker on every queue, configured through the environment as in production."""
    env = {**os.environ, "RHYTHM_ENV": "test"}
    for name in ENV_SETTINGS:
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        elif hasattr(value, "total_seconds"):
            value = value.total_seconds()
        env[f"RHYTHM_{name.upper()}"] = str(value)
    args = ["worker", "--pool", "solo", "-Q", "ingest,calendar,finetune,default"]
    args += ["-n", f"wearables-{secrets.token_hex(4)}@%h", "--without-mingle", "--without-gossip"]
    args += ["--without-heartbeat", "-l", "INFO"]
    try:
        with celery_process(args, env, log_dir / "worker.log"):
            yield
    finally:
        purge_broker(settings)


async def wait_until(check: Callable[[], bool], what: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_failing_provider_leaves_the_event_visible_until_it_recovers(
    wearables: Settings, wclient: httpx.AsyncClient, new_user: NewUser, server: ProviderServer, tmp_path: Path
) -> None:
    settings = wearables.model_copy(update={"provider_api_max_retries": 0})
    user_id, _ = await new_user()
    link(settings, user_id, "whoop", str(WHOOP_USER))
    serve_whoop(server)
    server.on("GET", SLEEP, Answer(503, None))
    body = body_of(whoop_event())

    with wearable_worker(settings, tmp_path):
        response = await wclient.post(
            "/v1/webhooks/whoop", content=body, headers=whoop_headers(settings, body)
        )
        assert response.status_code == 202, response.text
        page = await wclient.get("/v1/ops/webhook-events?source=whoop", headers=admin_headers_for(settings))
        [item] = page.json()["items"]
        event_id = uuid.UUID(item["id"])

        await wait_until(lambda: event(settings, event_id).attempts >= 2, "two failed attempts")
        failed = event(settings, event_id)
        assert failed.handled_at is None and "503" in (failed.error or "")
        listed = await wclient.get(
            "/v1/ops/webhook-events?status=failed", headers=admin_headers_for(settings)
        )
        assert [entry["id"] for entry in listed.json()["items"]] == [str(event_id)]

        serve_whoop(server)  # the provider is back
        await wait_until(lambda: event(settings, event_id).handled_at is not None, "the event to be handled")

        # A redelivery of the same notification is a duplicate: nothing more is fetched or written.
        fetched = len(server.requests_to(SLEEP))
        again = await wclient.post("/v1/webhooks/whoop", content=body, headers=whoop_headers(settings, body))
        assert again.status_code == 200
        await asyncio.sleep(1)
        assert len(server.requests_to(SLEEP)) == fetched

    handled = event(settings, event_id)
    assert handled.error is None and handled.user_id == user_id
    assert kinds(readings(settings, user_id))["hrv_rmssd"] == 31.8
