"""Google Health v4 through google-api-python-client: the client builds each request from Google's bundled
discovery document (``health.v4``, no network call), and the connection's :class:`ProviderApi` sends it —
authenticated, retried on 429/5xx with ``Retry-After``, refreshed once on 401 — like every wearable read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httplib2
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from bridges.webhooks import ProviderApi, UnmappableEvent

# What the sending client sets itself, or what no longer describes the (already decoded) body.
_DROPPED_REQUEST_HEADERS = frozenset({"authorization", "accept-encoding", "content-length", "host"})
_DROPPED_RESPONSE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class ApiHttp:
    """httplib2's ``request`` over a :class:`ProviderApi` (what google-api-python-client calls)."""

    def __init__(self, api: ProviderApi) -> None:
        self._api = api

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        redirections: int = 0,
        connection_type: Any = None,
    ) -> tuple[httplib2.Response, bytes]:
        parts = urlsplit(uri)
        # Relative to the connection's configured base URL (Google's in production, a local server in tests).
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        sent = {k: v for k, v in (headers or {}).items() if k.lower() not in _DROPPED_REQUEST_HEADERS}
        content = body.encode() if isinstance(body, str) else body
        response = self._api.send(method, target, content=content, headers=sent)
        info = {
            k.lower(): v for k, v in response.headers.items() if k.lower() not in _DROPPED_RESPONSE_HEADERS
        }
        return httplib2.Response({**info, "status": str(response.status_code)}), bytes(response.content)


def health_service(http: Any) -> Any:
    """The ``health`` v4 client on ``http`` (an :class:`ApiHttp`, or ``HttpMockSequence`` in tests)."""
    return build("health", "v4", http=http, static_discovery=True, cache_discovery=False)


def list_data_points(service: Any, data_type: str, filter_: str, page_size: int, max_pages: int) -> list[Any]:
    """Every data point of ``data_type`` matching ``filter_`` (AIP-160), following ``nextPageToken``.
    A 404 (nothing there) is an empty list; another 4xx cannot be fixed by retrying."""
    points = service.users().dataTypes().dataPoints()
    request = points.list(parent=f"users/me/dataTypes/{data_type}", filter=filter_, pageSize=page_size)
    found: list[Any] = []
    for _ in range(max_pages):
        if request is None:
            break
        try:
            page = request.execute()
        except HttpError as exc:
            if exc.resp.status == 404:
                return found
            raise UnmappableEvent(f"google-health answered {exc.resp.status} listing {data_type}") from exc
        found += page.get("dataPoints") or []
        request = points.list_next(request, page)
    return found
