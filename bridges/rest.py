"""The wearables' REST reads with a connection's token: timeouts, retries honouring ``Retry-After``, and one
token refresh on 401 through ``bridges.oauth`` (whose failure leaves the connection ``needs_reconsent``).

Used in workers (fetch after notify, backfill, reconcile), so it is synchronous. What callers can act on:

* ``bridges.oauth.ReconsentRequired`` — the grant is gone (refresh refused, or 401 even after a refresh); the
  connection is already marked ``needs_reconsent`` in memory, the caller's transaction commits it.
* ``bridges.oauth.ProviderUnavailable`` — network errors, timeouts, 429 and 5xx after the retries (or a
  ``Retry-After`` longer than we wait in a task): retry the task later.
* :class:`~bridges.webhooks.UnmappableEvent` — another 4xx (a missing scope, a malformed request): retrying
  cannot help.
* ``None`` from :meth:`ConnectionApi.get_json` — 404, the object is gone (deleted after the notification).
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from app.core.config import Settings
from app.models.device import DeviceConnection
from bridges.connections import cipher_for, mark_needs_reconsent
from bridges.oauth import ProviderUnavailable, ReconsentRequired, fresh_tokens, refresh_connection_tokens
from bridges.webhooks import UnmappableEvent

log = structlog.get_logger(__name__)

_RETRYABLE = frozenset({429, 500, 502, 503, 504})
_FIRST_BACKOFF_S = 0.5


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~40 ms of CPU; a client per task (per event) paid it on every fetch, more
    # than the fetch itself (rhythm bench webhooks --provider whoop). One context per process, shared.
    return httpx.create_ssl_context()


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also admits "²" or "٣", which float() refuses — a provider's odd
    # header must mean "no hint", not a crashed task.
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class ConnectionApi:
    """A provider's API as one connection sees it (implements ``bridges.webhooks.ProviderApi``)."""

    def __init__(
        self,
        connection: DeviceConnection,
        settings: Settings,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connection = connection
        self._settings = settings
        self._cipher = cipher_for(settings.secret_key.get_secret_value())
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=settings.provider_api_timeout.total_seconds(),
            follow_redirects=False,  # a redirect would carry the bearer token to wherever it points
            verify=_tls_context(),
            transport=transport,
        )
        self._token: str | None = None
        self.requests = 0

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ConnectionApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _access_token(self) -> str:
        if self._token is None:
            # Refreshed first when it expires within the margin; raises ReconsentRequired if not active.
            self._token = fresh_tokens(self._connection, self._settings, self._cipher).access_token
        return self._token

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        response = self.send("GET", path, params=params)
        status = response.status_code
        if status == 404:
            return None
        if status >= 400:
            raise UnmappableEvent(f"{self._connection.provider} answered {status} on {path}")
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderUnavailable(f"non-JSON answer on {path}") from exc

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One authenticated request: retried on 429/5xx and network errors, refreshed once on 401. Returns
        the first answer that is neither (another 4xx included: the caller decides what it means)."""
        refreshed = False
        retries = 0
        path = urlsplit(url).path or "/"
        while True:
            self.requests += 1
            sent = {
                **(headers or {}),
                "Authorization": f"Bearer {self._access_token()}",
                "Accept": "application/json",
            }
            try:
                response = self._client.request(
                    method, url, params=dict(params) if params else None, content=content, headers=sent
                )
            except httpx.TransportError as exc:  # timeouts, refused connections, resets
                retries = self._wait_or_give_up(retries, None, f"{type(exc).__name__} on {path}")
                continue
            status = response.status_code
            if status == 401:
                if refreshed:
                    reason = "the provider refused a freshly refreshed token"
                    mark_needs_reconsent(self._connection, reason)
                    raise ReconsentRequired(self._connection.id, reason)
                # The token may have been revoked early or rotated elsewhere: one refresh, then one more try.
                tokens = refresh_connection_tokens(self._connection, self._settings, self._cipher)
                self._token = tokens.access_token
                refreshed = True
                continue
            if status in _RETRYABLE:
                wait = retry_after_seconds(response.headers.get("retry-after"), datetime.now(UTC))
                retries = self._wait_or_give_up(retries, wait, f"{status} on {path}")
                continue
            return response

    def _wait_or_give_up(self, retries: int, retry_after: float | None, what: str) -> int:
        if retries >= self._settings.provider_api_max_retries:
            raise ProviderUnavailable(f"{self._connection.provider}: {what}, {retries} retries spent")
        delay = retry_after if retry_after is not None else _FIRST_BACKOFF_S * 2.0**retries
        if delay > self._settings.provider_api_max_retry_after.total_seconds():
            # Too long to hold a worker: the task fails this attempt and the inbox retries it later.
            raise ProviderUnavailable(f"{self._connection.provider}: {what}, retry after {delay:.0f} s")
        log.info("provider_api_retry", provider=self._connection.provider, reason=what, delay=round(delay, 2))
        self._sleep(delay)
        return retries + 1


def api_base_url(settings: Settings, provider: str) -> str:
    """The REST base URL of a fetching provider (``<prefix>_api_base_url``, shared with bridges.oauth)."""
    prefix = provider.replace("-", "_")
    value: str = getattr(settings, f"{prefix}_api_base_url")
    return value
