"""Google Calendar v3 and Tasks v1 through google-api-python-client, with google-auth credentials.

The sync builds the credentials with ``bridges.oauth.google`` (fresh before expiry, under the connection's
row lock); google-auth refreshes them again after a 401, through the same HTTP object as the API calls, so
tests drive that refresh with the library's own ``HttpMockSequence``, and the caller stores what it
refreshed. A refresh that fails, or a 401 that survives one, means the user withdrew consent:
:class:`GoogleAuthLost`. :func:`credentials_for` builds credentials from plain tokens (teardown).

The client is synchronous (httplib2): it runs in Celery workers, never in the API's event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from app.core.config import Settings
from bridges.connections import TokenSet

# Read-only scopes the connect flow asks for; events.watch needs no write scope.
SCOPES = (
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/tasks.readonly",
)
EVENTS_PAGE_SIZE = 250
TASKS_PAGE_SIZE = 100
HTTP_TIMEOUT_S = 30
# Retries of 5xx / 429 / 403-rate-limit inside google-api-python-client (exponential backoff).
NUM_RETRIES = 2


class GoogleAuthLost(Exception):
    """The refresh token no longer works (revoked, expired) or Google keeps answering 401."""


class SyncTokenGone(Exception):
    """HTTP 410 on ``events.list`` with a sync token: wipe the calendar's local copy and sync in full."""


class ChannelGone(Exception):
    """HTTP 404 on ``events.watch``: the account lost access to the calendar."""


class IncompleteListing(Exception):
    """The last page carried no ``nextSyncToken`` (never stored: the next sync would miss changes)."""


def credentials_for(tokens: TokenSet, settings: Settings) -> Credentials:
    # google-auth compares expiry with a naive UTC clock.
    expiry = tokens.expires_at.astimezone(UTC).replace(tzinfo=None) if tokens.expires_at else None
    return Credentials(  # type: ignore[no-untyped-call]
        token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_uri=settings.google_token_url,
        client_id=settings.google_client_id or None,
        client_secret=settings.google_client_secret.get_secret_value() or None,
        expiry=expiry,
    )


def _endpoint(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path


@dataclass
class GoogleClients:
    """The Calendar and Tasks services of one connection, sharing one authorised HTTP object."""

    credentials: Credentials
    calendar: Any
    tasks: Any

    @classmethod
    def create(
        cls, credentials: Credentials, settings: Settings, http: httplib2.Http | None = None
    ) -> GoogleClients:
        authorised = google_auth_httplib2.AuthorizedHttp(
            credentials, http=http if http is not None else httplib2.Http(timeout=HTTP_TIMEOUT_S)
        )
        # static_discovery: the bundled discovery documents, no network call at build time.
        calendar = build(
            "calendar",
            "v3",
            http=authorised,
            cache_discovery=False,
            static_discovery=True,
            client_options={"api_endpoint": _endpoint(settings.google_api_base_url, "calendar/v3/")},
        )
        tasks = build(
            "tasks",
            "v1",
            http=authorised,
            cache_discovery=False,
            static_discovery=True,
            client_options={"api_endpoint": _endpoint(settings.google_tasks_api_base_url, "")},
        )
        return cls(credentials=credentials, calendar=calendar, tasks=tasks)


def _execute(request: Any) -> dict[str, Any]:
    """Run one request, turning auth failures into :class:`GoogleAuthLost`."""
    try:
        response: dict[str, Any] = request.execute(num_retries=NUM_RETRIES)
    except RefreshError as exc:
        raise GoogleAuthLost(f"token refresh failed: {exc}") from exc
    except HttpError as exc:
        if exc.resp.status == 401:
            raise GoogleAuthLost("Google answered 401 after a token refresh") from exc
        raise
    except TransportError as exc:  # the token endpoint could not be reached: retry later, not reconsent
        raise ConnectionError(str(exc)) from exc
    return response


def _pages(collection: Any, request: Any) -> Iterator[dict[str, Any]]:
    while request is not None:
        response = _execute(request)
        yield response
        request = collection.list_next(request, response)


def list_calendars(clients: GoogleClients) -> list[dict[str, Any]]:
    """Calendars the account can read events of (``calendarList.list``, every page)."""
    collection = clients.calendar.calendarList()
    items: list[dict[str, Any]] = []
    for page in _pages(collection, collection.list(minAccessRole="reader", maxResults=250)):
        items.extend(page.get("items", []))
    return items


def list_events(
    clients: GoogleClients, calendar_id: str, *, sync_token: str | None, time_min: datetime
) -> tuple[list[dict[str, Any]], str]:
    """Every changed event (incremental with ``sync_token``, else a full listing from ``time_min``) and the
    ``nextSyncToken`` of the last page.

    Instances of recurring events come expanded (``singleEvents``). With a sync token Google forbids
    ``timeMin``, and every other parameter must equal the full sync's, so both share them.
    """
    params: dict[str, Any] = {"calendarId": calendar_id, "singleEvents": True, "maxResults": EVENTS_PAGE_SIZE}
    if sync_token is not None:
        params["syncToken"] = sync_token
    else:
        params["timeMin"] = time_min.astimezone(UTC).isoformat().replace("+00:00", "Z")
    collection = clients.calendar.events()
    items: list[dict[str, Any]] = []
    next_sync_token: str | None = None
    try:
        for page in _pages(collection, collection.list(**params)):
            items.extend(page.get("items", []))
            # Only the last page carries it; an earlier value would skip the pages after it.
            next_sync_token = page.get("nextSyncToken")
    except HttpError as exc:
        if exc.resp.status == 410 and sync_token is not None:
            raise SyncTokenGone(calendar_id) from exc
        raise
    if not next_sync_token:
        raise IncompleteListing(calendar_id)
    return items, next_sync_token


def watch_events(
    clients: GoogleClients, calendar_id: str, *, channel_id: str, address: str, token: str, ttl_s: int
) -> dict[str, Any]:
    """``events.watch``: a push channel for the calendar → ``{id, resourceId, expiration (ms), …}``."""
    body = {
        "id": channel_id,
        "type": "web_hook",
        "address": address,
        "token": token,
        "params": {"ttl": str(ttl_s)},
    }
    try:
        return _execute(clients.calendar.events().watch(calendarId=calendar_id, body=body))
    except HttpError as exc:
        if exc.resp.status == 404:
            raise ChannelGone(calendar_id) from exc
        raise


def stop_channel(clients: GoogleClients, *, channel_id: str, resource_id: str) -> None:
    """``channels.stop``; a channel Google no longer knows (404) is as stopped as it gets."""
    try:
        _execute(clients.calendar.channels().stop(body={"id": channel_id, "resourceId": resource_id}))
    except HttpError as exc:
        if exc.resp.status != 404:
            raise


def list_tasklists(clients: GoogleClients) -> list[dict[str, Any]]:
    collection = clients.tasks.tasklists()
    items: list[dict[str, Any]] = []
    for page in _pages(collection, collection.list(maxResults=TASKS_PAGE_SIZE)):
        items.extend(page.get("items", []))
    return items


def list_tasks(
    clients: GoogleClients, tasklist_id: str, *, updated_min: datetime | None
) -> list[dict[str, Any]]:
    """Tasks changed since ``updated_min`` (all without it), completed, hidden and deleted ones included."""
    params: dict[str, Any] = {
        "tasklist": tasklist_id,
        "showCompleted": True,
        "showHidden": True,
        "showDeleted": True,
        "maxResults": TASKS_PAGE_SIZE,
    }
    if updated_min is not None:
        params["updatedMin"] = updated_min.astimezone(UTC).isoformat().replace("+00:00", "Z")
    collection = clients.tasks.tasks()
    items: list[dict[str, Any]] = []
    for page in _pages(collection, collection.list(**params)):
        items.extend(page.get("items", []))
    return items


def parse_rfc3339(value: str) -> datetime:
    """Google's timestamps (``2026-12-03T10:00:00.000Z``) as aware datetimes."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
