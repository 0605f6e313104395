"""A local HTTP server that speaks the parts of Google's Calendar API v3 and OAuth token endpoint the calendar
bridge uses (``bridges.google.client``), in their documented formats: ``calendarList.list``, ``events.list``
(pages, ``nextPageToken`` / ``nextSyncToken``, incremental with ``syncToken``, cancelled items),
``events.watch``, ``channels.stop`` and a refresh-token grant.

It serves one or more accounts (:class:`CalendarState`, one primary calendar each), told apart by the bearer
token as Google does: a request with nobody's token is 401. What each account was asked is recorded, for the
calendar tests and for ``rhythm simulate``'s books. It lives in the package, not under ``tests/``, because
``rhythm simulate --spawn`` points the stack's ``RHYTHM_GOOGLE_API_BASE_URL`` at it."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from app.benchmarks.local_http import serving


def rfc3339(moment: datetime) -> str:
    """A UTC timestamp as Google Calendar writes it (``2026-11-24T08:30:00.000Z``)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def google_event(
    event_id: str,
    summary: str,
    start: datetime,
    minutes: int = 60,
    *,
    created: datetime,
    updated: datetime | None = None,
    time_zone: str = "UTC",
    owner: str = "me@example.com",
) -> dict[str, Any]:
    """A confirmed timed event as ``events.list`` returns it (without ``updated``, a server sets it)."""
    body: dict[str, Any] = {
        "kind": "calendar#event",
        "etag": f'"{secrets.randbelow(10**15)}"',
        "id": event_id,
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
        "created": rfc3339(created),
        "summary": summary,
        "creator": {"email": owner, "self": True},
        "organizer": {"email": owner, "self": True},
        "start": {"dateTime": start.isoformat(), "timeZone": time_zone},
        "end": {"dateTime": (start + timedelta(minutes=minutes)).isoformat(), "timeZone": time_zone},
        "iCalUID": f"{event_id}@google.com",
        "sequence": 0,
        "reminders": {"useDefault": True},
        "eventType": "default",
    }
    if updated is not None:
        body["updated"] = rfc3339(updated)
    return body


# Small pages by default, so every listing in the calendar tests crosses several; Google's own default is 250.
PAGE_SIZE = 2


@dataclass
class CalendarState:
    access_token: str
    refresh_token: str
    calendar_id: str = "anna@example.com"
    revision: int = 0
    # event id → (revision of its last change, resource)
    events: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    watches: list[dict[str, Any]] = field(default_factory=list)
    stops: list[dict[str, Any]] = field(default_factory=list)
    listings: list[dict[str, list[str]]] = field(default_factory=list)
    refreshes: int = 0
    revoked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, resource: dict[str, Any]) -> None:
        with self.lock:
            self.revision += 1
            resource = {**resource, "updated": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
            self.events[resource["id"]] = (self.revision, resource)

    def cancel(self, event_id: str) -> None:
        self.put({"kind": "calendar#event", "id": event_id, "status": "cancelled"})

    def incremental_listings(self) -> int:
        """events.list calls that started an incremental sync (first pages with a sync token)."""
        return sum(1 for q in self.listings if "syncToken" in q and "pageToken" not in q)


class CalendarApi:
    """The accounts one server answers for; :meth:`add` may be called while it serves."""

    def __init__(self, *states: CalendarState, page_size: int = PAGE_SIZE) -> None:
        self.states = list(states)
        self.page_size = page_size
        self._lock = threading.Lock()

    def add(self, state: CalendarState) -> None:
        with self._lock:
            self.states.append(state)

    def _find(self, match: Any) -> CalendarState | None:
        with self._lock:
            return next((s for s in self.states if match(s)), None)

    def by_access_token(self, token: str) -> CalendarState | None:
        return self._find(lambda s: s.access_token == token)

    def by_refresh_token(self, token: str) -> CalendarState | None:
        return self._find(lambda s: s.refresh_token == token)

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve on 127.0.0.1 (a free port); yields the base URL."""
        handler = type("Handler", (_Handler,), {"api": self})
        with serving(handler, "calendar-api") as url:
            yield url


class _Handler(BaseHTTPRequestHandler):
    api: CalendarApi
    state: CalendarState

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, body: dict[str, Any] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, reason: str, message: str) -> None:
        errors = [{"domain": "global", "reason": reason, "message": message}]
        self._send(status, {"error": {"code": status, "message": message, "errors": errors}})

    def _authorised(self) -> bool:
        bearer = self.headers.get("Authorization", "")
        state = (
            self.api.by_access_token(bearer.removeprefix("Bearer ")) if bearer.startswith("Bearer ") else None
        )
        if state is not None:
            self.state = state
            return True
        self._error(401, "authError", "Invalid Credentials")
        return False

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:
        url = urlparse(self.path)
        if url.path == "/token":
            form = parse_qs(self._body().decode())
            found = self.api.by_refresh_token((form.get("refresh_token") or [""])[0])
            if found is None:
                self._send(400, {"error": "invalid_grant", "error_description": "Bad Request"})
                return
            state = found
            with state.lock:
                state.refreshes += 1
                state.access_token = f"ya29.refreshed-{state.refreshes}"
            self._send(200, {"access_token": state.access_token, "expires_in": 3599, "token_type": "Bearer"})
            return
        if url.path == "/revoke":  # RFC 7009, as Google's https://oauth2.googleapis.com/revoke
            tokens = parse_qs(self._body().decode()).get("token", [])
            # The account whose token it is; an unknown token is still answered 200, as Google does.
            for token in tokens:
                owner = self.api.by_access_token(token) or self.api.by_refresh_token(token)
                if owner is not None:
                    owner.revoked.append(token)
            self._send(200, {})
            return
        if not self._authorised():
            return
        state = self.state
        body = json.loads(self._body() or b"{}")
        if url.path.endswith("/events/watch"):
            state.watches.append(body)
            expiration = datetime.now(UTC) + timedelta(seconds=int(body.get("params", {}).get("ttl", 604800)))
            self._send(
                200,
                {
                    "kind": "api#channel",
                    "id": body["id"],
                    "resourceId": "res-" + unquote(url.path.split("/")[4]),
                    "resourceUri": f"https://www.googleapis.com{url.path[:-6]}?alt=json",
                    "expiration": str(int(expiration.timestamp() * 1000)),
                },
            )
            return
        if url.path == "/calendar/v3/channels/stop":
            state.stops.append(body)
            self._send(204)
            return
        self._error(404, "notFound", "Not Found")

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if not self._authorised():
            return
        state = self.state
        query = parse_qs(url.query)
        if url.path == "/calendar/v3/users/me/calendarList":
            entry: dict[str, Any] = {
                "kind": "calendar#calendarListEntry",
                "id": state.calendar_id,
                "summary": "Anna",
            }
            entry |= {"accessRole": "owner", "primary": True, "selected": True, "timeZone": "Europe/Berlin"}
            self._send(200, {"kind": "calendar#calendarList", "items": [entry], "nextSyncToken": "cl"})
            return
        if url.path == f"/calendar/v3/calendars/{state.calendar_id.replace('@', '%40')}/events":
            self._events(query)
            return
        self._error(404, "notFound", "Not Found")

    def _events(self, query: dict[str, list[str]]) -> None:
        state = self.state
        state.listings.append(query)
        # pageToken = "<basis revision>:<offset>:<snapshot revision>", so a page sequence reads one snapshot.
        if "pageToken" in query:
            basis, offset, snapshot = (int(part) for part in query["pageToken"][0].split(":"))
        else:
            basis = int(query["syncToken"][0].removeprefix("rev-")) if "syncToken" in query else -1
            offset, snapshot = 0, state.revision
        with state.lock:
            changed = sorted(
                (rev, resource)
                for rev, resource in state.events.values()
                if basis < rev <= snapshot and (basis >= 0 or resource.get("status") != "cancelled")
            )
        size = self.api.page_size
        items = [resource for _, resource in changed[offset : offset + size]]
        body: dict[str, Any] = {"kind": "calendar#events", "summary": state.calendar_id, "items": items}
        if offset + size < len(changed):
            body["nextPageToken"] = f"{basis}:{offset + size}:{snapshot}"
        else:
            body["nextSyncToken"] = f"rev-{snapshot}"
        self._send(200, body)


@contextmanager
def calendar_server(state: CalendarState) -> Iterator[str]:
    """Serve one account on 127.0.0.1 (a free port); yields the base URL."""
    with CalendarApi(state).serving() as base:
        yield base
