"""Google Calendar test material: settings, a linked account, and API bodies in Google's documented format
(Calendar API v3 ``events`` resources and list pages, OAuth token answers) for ``HttpMockSequence`` and the
local Calendar server."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy.orm import Session

from app.benchmarks.calendar_api import google_event, rfc3339
from app.core.config import Settings
from app.models import DeviceConnection, GoogleCalendar, GoogleChannel, User
from bridges.connections import TokenSet, cipher_for, read_tokens, write_tokens
from bridges.google.push import token_hash

PUBLIC_BASE_URL = "https://rhythm.example"


def google_settings(settings: Settings, **overrides: object) -> Settings:
    """``settings`` with Google configured and a broker key prefix of its own (purge it afterwards)."""
    values: dict[str, object] = {
        "public_base_url": PUBLIC_BASE_URL,
        "google_client_id": "client-123.apps.googleusercontent.com",
        "google_client_secret": SecretStr("client-secret-" + secrets.token_hex(8)),
        "google_token_url": "https://oauth2.googleapis.com/token",
        "broker_key_prefix": f"rhythm-test-{secrets.token_hex(6)}:",
    }
    values.update(overrides)
    return settings.model_copy(update=values)


def linked_account(
    session: Session,
    settings: Settings,
    *,
    timezone: str = "UTC",
    access_token: str = "ya29.initial",
    refresh_token: str | None = "1//refresh",
    expires_at: datetime | None = None,
    calendar_id: str = "anna@example.com",
    user_id: uuid.UUID | None = None,
) -> tuple[User, DeviceConnection, GoogleCalendar]:
    """A user (new, or ``user_id``) with a Google connection (tokens encrypted as the connect flow stores
    them) and one calendar."""
    existing = session.get(User, user_id) if user_id is not None else None
    user = existing or User(timezone=timezone)
    session.add(user)
    session.flush()
    connection = DeviceConnection(
        user_id=user.id, provider="google", external_user_id=f"google-{uuid.uuid4().hex}"
    )
    write_tokens(
        connection,
        TokenSet(access_token=access_token, refresh_token=refresh_token, expires_at=expires_at),
        cipher_for(settings.secret_key.get_secret_value()),
    )
    session.add(connection)
    session.flush()
    calendar = GoogleCalendar(
        user_id=user.id, connection_id=connection.id, calendar_id=calendar_id, primary=True
    )
    session.add(calendar)
    session.flush()
    return user, connection, calendar


def stored_tokens(settings: Settings, connection: DeviceConnection) -> TokenSet | None:
    return read_tokens(connection, cipher_for(settings.secret_key.get_secret_value()))


def event(
    event_id: str,
    summary: str,
    start: datetime,
    minutes: int = 60,
    *,
    updated: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A confirmed timed event as ``events.list`` returns it."""
    body = google_event(
        event_id,
        summary,
        start,
        minutes,
        created=start - timedelta(days=3),
        updated=updated or start - timedelta(days=1),
        time_zone="Europe/Berlin",
        owner="anna@example.com",
    )
    body.update(extra)
    return body


def instance(
    master_id: str, summary: str, start: datetime, minutes: int = 30, **extra: Any
) -> dict[str, Any]:
    """One instance of a recurring series (``singleEvents=true``): own id, ``recurringEventId``."""
    stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    body = event(f"{master_id}_{stamp}", summary, start, minutes, **extra)
    body["recurringEventId"] = master_id
    body["originalStartTime"] = body["start"]
    return body


def all_day(event_id: str, summary: str, day: datetime, days: int = 1, **extra: Any) -> dict[str, Any]:
    body = event(event_id, summary, day, **extra)
    body["start"] = {"date": day.date().isoformat()}
    body["end"] = {"date": (day.date() + timedelta(days=days)).isoformat()}
    return body


def cancelled(event_id: str, updated: datetime) -> dict[str, Any]:
    """What an incremental sync returns for a deleted event: little more than the id."""
    return {
        "kind": "calendar#event",
        "etag": '"1"',
        "id": event_id,
        "status": "cancelled",
        "updated": rfc3339(updated),
    }


def page(
    items: list[dict[str, Any]], *, next_page: str | None = None, sync_token: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "calendar#events",
        "etag": '"p1"',
        "summary": "anna@example.com",
        "updated": rfc3339(datetime.now(UTC)),
        "timeZone": "Europe/Berlin",
        "accessRole": "owner",
        "defaultReminders": [{"method": "popup", "minutes": 10}],
        "items": items,
    }
    if next_page is not None:
        body["nextPageToken"] = next_page
    if sync_token is not None:
        body["nextSyncToken"] = sync_token
    return body


def ok(body: dict[str, Any]) -> tuple[dict[str, str], str]:
    return {"status": "200", "content-type": "application/json; charset=UTF-8"}, json.dumps(body)


def error(status: int, reason: str, message: str) -> tuple[dict[str, str], str]:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}],
        }
    }
    return {"status": str(status), "content-type": "application/json; charset=UTF-8"}, json.dumps(body)


def token_answer(access_token: str, expires_in: int = 3599) -> tuple[dict[str, str], str]:
    """Google's OAuth token endpoint after a refresh (no new refresh token)."""
    body = {
        "access_token": access_token,
        "expires_in": expires_in,
        "scope": "https://www.googleapis.com/auth/calendar.readonly",
        "token_type": "Bearer",
    }
    return {"status": "200", "content-type": "application/json; charset=utf-8"}, json.dumps(body)


def watch_answer(channel_id: str, resource_id: str, expiration: datetime) -> tuple[dict[str, str], str]:
    return ok(
        {
            "kind": "api#channel",
            "id": channel_id,
            "resourceId": resource_id,
            "resourceUri": "https://www.googleapis.com/calendar/v3/calendars/anna%40example.com/events",
            "expiration": str(int(expiration.timestamp() * 1000)),
        }
    )


def channel_row(
    session: Session,
    calendar: GoogleCalendar,
    *,
    channel_id: str,
    token: str,
    resource_id: str,
    expiration: datetime,
) -> GoogleChannel:
    channel = GoogleChannel(
        user_id=calendar.user_id,
        calendar_row_id=calendar.id,
        channel_id=channel_id,
        resource_id=resource_id,
        token_hash=token_hash(token),
        expiration=expiration,
    )
    session.add(channel)
    session.flush()
    return channel


def notification_headers(
    channel_id: str, token: str, resource_id: str, number: int, state: str = "exists"
) -> dict[str, str]:
    """What Google sends with every Calendar push notification (the body is empty)."""
    return {
        "x-goog-channel-id": channel_id,
        "x-goog-channel-token": token,
        "x-goog-channel-expiration": "Thu, 10 Dec 2026 02:00:00 GMT",
        "x-goog-message-number": str(number),
        "x-goog-resource-id": resource_id,
        "x-goog-resource-state": state,
        "x-goog-resource-uri": "https://www.googleapis.com/calendar/v3/calendars/anna%40example.com/events?alt=json",
        "content-length": "0",
    }
