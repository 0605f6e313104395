"""Pull a connection's readings over a window (backfill on link, the daily reconcile), and keep Oura's
webhook subscriptions alive.

Pushes get lost (open-wearables#1150: Oura silent for two days), so beat re-reads the last
``wearable_reconcile_days`` of every active WHOOP, Oura and Google Health connection; upserts on the readings'
natural key make a re-read of data we already have write nothing. A connection whose grant is gone is left
``needs_reconsent`` (committed) and skipped until the user links it again.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy.orm import Session

from app.core import jobs
from app.core.config import Settings
from app.core.tasks import BACKFILL_CONNECTION
from app.wearables.repository import WearableRepository
from bridges.connections import ConnectionStatus
from bridges.meters.signals import normalise
from bridges.oauth import ProviderUnavailable, ReconsentRequired
from bridges.oura.provider import MAPPERS as OURA_DATA_TYPES
from bridges.rest import ConnectionApi, api_base_url
from bridges.webhooks import FetchingProvider, get_provider, registered_sources

log = structlog.get_logger(__name__)

OURA_EVENT_TYPES = ("create", "update")
# Renew an Oura subscription this long before it expires (they last about 90 days; beat runs daily).
OURA_RENEW_BEFORE = timedelta(days=14)


def fetching_sources(settings: Settings) -> list[str]:
    """The configured providers whose data is pulled with the user's token."""
    return [
        source
        for source in registered_sources()
        if isinstance(get_provider(source, settings), FetchingProvider)
    ]


def pull_connection(
    session: Session, settings: Settings, connection_id: uuid.UUID, now: datetime, days: int
) -> int:
    """Read the connection's last ``days`` days from its provider and upsert them; returns rows written.

    Idempotent. A revoked or re-consent-needing connection, or one of a provider we do not pull from, is
    left alone (0). ``ProviderUnavailable`` propagates so the task retries later.
    """
    repo = WearableRepository(session)
    connection = repo.connection(connection_id)
    if connection is None or connection.status != ConnectionStatus.ACTIVE or connection.revoked_at:
        return 0
    provider = get_provider(connection.provider, settings)
    if not isinstance(provider, FetchingProvider):
        return 0
    try:
        with ConnectionApi(connection, settings, api_base_url(settings, connection.provider)) as api:
            raw = provider.fetch_window(api, now - timedelta(days=days), now)
    except ReconsentRequired as exc:
        # The status change is on the row; returning (not raising) lets the task's boundary commit it.
        log.warning("wearable_pull_needs_reconsent", connection_id=str(connection_id), reason=exc.reason)
        return 0
    readings, rejections = normalise(raw)
    for rejection in rejections:
        log.warning("wearable_reading_rejected", connection_id=str(connection_id), code=rejection.code)
    rows: list[dict[str, Any]] = [
        {
            "id": uuid.uuid4(),
            "source": reading.source,
            "kind": reading.kind.value,
            "value": reading.value,
            "unit": reading.unit.value,
            "observed_at": reading.observed_at,
            "created_at": now,
        }
        for reading in readings
    ]
    # One row per natural key (the last wins): overlapping pages must not make one INSERT … ON CONFLICT touch
    # the same row twice, which Postgres refuses.
    unique = {(row["source"], row["kind"], row["observed_at"]): row for row in rows}
    written = repo.upsert_readings(connection.user_id, list(unique.values()))
    connection.provider_data = {**(connection.provider_data or {}), "last_pull_at": now.isoformat()}
    log.info("wearable_pulled", connection_id=str(connection_id), days=days, written=written)
    return written


def provider_of(session: Session, connection_id: uuid.UUID) -> str | None:
    connection = WearableRepository(session).connection(connection_id)
    return None if connection is None else connection.provider


def schedule_reconcile(session: Session, settings: Settings) -> int:
    """Enqueue (after commit) one pull of the reconcile window per active pulled connection."""
    ids = WearableRepository(session).active_connection_ids(fetching_sources(settings))
    for connection_id in ids:
        job = jobs.Job(BACKFILL_CONNECTION, (str(connection_id),), {"days": settings.wearable_reconcile_days})
        jobs.enqueue(session, settings, job)
    return len(ids)


def ensure_oura_subscriptions(settings: Settings, now: datetime, client: httpx.Client | None = None) -> int:
    """Create the missing Oura subscriptions and renew those expiring soon; returns how many changed.

    Oura subscriptions belong to our *app* (one per data type × event type), not to a user, so Oura's own
    list is the state: nothing is stored here, and running this again changes nothing.
    """
    client_id = settings.oura_client_id
    secret = settings.oura_client_secret.get_secret_value()
    token = settings.oura_verification_token.get_secret_value()
    if not (client_id and secret and token):
        return 0  # not configured: nothing could verify the callback
    callback = settings.public_base_url.rstrip("/") + "/v1/webhooks/oura"
    headers = {"x-client-id": client_id, "x-client-secret": secret}
    http = client or httpx.Client(timeout=settings.provider_api_timeout.total_seconds())
    base = settings.oura_api_base_url.rstrip("/")
    changed = 0
    try:
        listing = http.get(f"{base}/v2/webhook/subscription", headers=headers)
        _raise_for_outage(listing)
        existing = {
            (item.get("data_type"), item.get("event_type")): item
            for item in listing.json()
            if item.get("callback_url") == callback
        }
        for data_type in OURA_DATA_TYPES:
            for event_type in OURA_EVENT_TYPES:
                current = existing.get((data_type, event_type))
                if current is None:
                    body = {
                        "callback_url": callback,
                        "verification_token": token,
                        "event_type": event_type,
                        "data_type": data_type,
                    }
                    response = http.post(f"{base}/v2/webhook/subscription", headers=headers, json=body)
                elif _expires_soon(current.get("expiration_time"), now):
                    response = http.put(
                        f"{base}/v2/webhook/subscription/renew/{current['id']}", headers=headers
                    )
                else:
                    continue
                _raise_for_outage(response)
                changed += 1
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"oura subscriptions: {type(exc).__name__}") from exc
    finally:
        if client is None:
            http.close()
    log.info("oura_subscriptions_checked", changed=changed)
    return changed


def _raise_for_outage(response: httpx.Response) -> None:
    if response.status_code >= 300:
        raise ProviderUnavailable(f"oura subscriptions answered {response.status_code}")


def _expires_soon(value: Any, now: datetime) -> bool:
    try:
        expires = datetime.fromisoformat(str(value))
    except ValueError:
        return True  # unreadable expiry: renewing is harmless
    if expires.tzinfo is None:
        return True
    return expires - now < OURA_RENEW_BEFORE
