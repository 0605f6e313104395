"""Terra accounts from our side: the widget session our backend opens, and deauthentication on disconnect.

Terra's widget links a provider account; its signed ``auth`` webhook (``bridges.terra.provider``) then creates
the connection from ``reference_id``, our user id as we set it here (never as a client sends it). Removing a
Terra connection must deauthenticate the Terra user, or the next delivery would recreate the connection from
its ``reference_id``: that runs as this module's teardown, retried by the pending-revocation worker.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.models.device import DeviceConnection
from bridges.connections import TokenSet
from bridges.oauth.client import ProviderUnavailable
from bridges.oauth.teardown import register_teardown

WIDGET_SESSION_PATH = "/api/widget/session"
DEAUTH_PATH = "/auth/deauthenticateUser"


class TerraNotConfigured(Exception):
    """No Terra developer id / API key in settings."""


def _headers(settings: Settings) -> dict[str, str]:
    if not settings.terra_dev_id or not settings.terra_api_key.get_secret_value():
        raise TerraNotConfigured
    return {
        "dev-id": settings.terra_dev_id,
        "x-api-key": settings.terra_api_key.get_secret_value(),
        "Accept": "application/json",
    }


async def create_widget_session(
    settings: Settings,
    reference_id: str,
    providers: list[str] | None = None,
    language: str | None = None,
) -> dict[str, Any]:
    """Open a Terra widget session for our user ``reference_id``; Terra's JSON answer (``url`` at least)."""
    body: dict[str, Any] = {"reference_id": reference_id}
    if providers:
        body["providers"] = providers
    if language:
        body["language"] = language
    url = settings.terra_api_base_url.rstrip("/") + WIDGET_SESSION_PATH
    timeout = httpx.Timeout(settings.oauth_http_timeout.total_seconds())
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        try:
            response = await http.post(url, json=body, headers=_headers(settings))
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"terra widget session failed: {type(exc).__name__}") from exc
    if response.status_code not in (200, 201):
        raise ProviderUnavailable(f"terra widget session answered {response.status_code}")
    try:
        answer = response.json()
    except ValueError as exc:
        raise ProviderUnavailable("terra widget session answered non-JSON") from exc
    if not isinstance(answer, dict) or not isinstance(answer.get("url"), str) or not answer["url"]:
        raise ProviderUnavailable("terra widget session answer has no url")
    return answer


class TerraDeauth:
    """Teardown of a Terra connection: ``DELETE /auth/deauthenticateUser?user_id=…`` (unknown user = done)."""

    def collect(self, session: Session, connection: DeviceConnection) -> dict[str, Any]:
        return {"terra_user_id": connection.external_user_id}

    def run(self, payload: dict[str, Any], tokens: TokenSet | None, settings: Settings) -> None:
        user_id = payload.get("terra_user_id")
        if not isinstance(user_id, str) or not user_id:
            return
        try:
            headers = _headers(settings)
        except TerraNotConfigured as exc:
            raise ProviderUnavailable("terra credentials are not configured") from exc
        url = settings.terra_rest_api_base_url.rstrip("/") + DEAUTH_PATH
        timeout = httpx.Timeout(settings.oauth_http_timeout.total_seconds())
        with httpx.Client(timeout=timeout, follow_redirects=False) as http:
            try:
                response = http.delete(url, params={"user_id": user_id}, headers=headers)
            except httpx.HTTPError as exc:
                raise ProviderUnavailable(f"terra deauth failed: {type(exc).__name__}") from exc
        if response.status_code < 300 or response.status_code == 404:
            return
        raise ProviderUnavailable(f"terra deauth answered {response.status_code}")


register_teardown("terra", TerraDeauth())
