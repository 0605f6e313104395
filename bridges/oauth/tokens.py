"""Usable tokens for a stored connection: refreshed before expiry, and re-consent flagged when refresh fails.

For workers (synchronous sessions). Callers own the transaction: a refreshed token set is written to the
connection in memory (``bridges.connections.write_tokens``) and must be committed by the task's boundary; a
provider that rotates refresh tokens invalidates the old one as soon as it answers, so commit promptly.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.crypto import TokenCipher
from app.models.device import DeviceConnection
from bridges.connections import (
    ConnectionStatus,
    TokenSet,
    mark_needs_reconsent,
    read_tokens,
    write_tokens,
)
from bridges.oauth.client import OAuthGrantError, refresh_tokens
from bridges.oauth.providers import oauth_provider


class ReconsentRequired(Exception):
    """The connection's grant is gone (refresh refused, no tokens): the user must link the account again."""

    def __init__(self, connection_id: object, reason: str) -> None:
        super().__init__(f"connection {connection_id} needs re-consent: {reason}")
        self.reason = reason


class NotAnOAuthConnection(Exception):
    """The connection's provider is not an OAuth provider we know, or is not configured here."""


def refresh_connection_tokens(
    connection: DeviceConnection, settings: Settings, cipher: TokenCipher
) -> TokenSet:
    """Refresh the connection's access token now and store the result (encrypted) on the row.

    ``invalid_grant`` or a 401 from the token endpoint marks the connection ``needs_reconsent`` and raises
    :class:`ReconsentRequired`; a provider outage raises ``bridges.oauth.client.ProviderUnavailable`` and
    changes nothing (retry later).
    """
    provider = oauth_provider(connection.provider)
    endpoints = provider.endpoints(settings) if provider is not None else None
    if provider is None or endpoints is None:
        raise NotAnOAuthConnection(connection.provider)
    tokens = read_tokens(connection, cipher)
    if tokens is None or tokens.refresh_token is None:
        reason = "no refresh token stored"
        mark_needs_reconsent(connection, reason)
        raise ReconsentRequired(connection.id, reason)
    try:
        fresh = refresh_tokens(provider, endpoints, settings, tokens)
    except OAuthGrantError as exc:
        reason = f"refresh refused: {exc.error}"
        mark_needs_reconsent(connection, reason)
        raise ReconsentRequired(connection.id, reason) from exc
    write_tokens(connection, fresh, cipher)
    return fresh


def _lock_for_refresh(connection: DeviceConnection) -> None:
    """Re-read the row under ``FOR UPDATE`` so that two workers do not refresh the same grant at once.

    With rotating refresh tokens (WHOOP, Oura) the second of two concurrent refreshes presents a token the
    first just invalidated and would wrongly flag the connection for re-consent; the lock makes the second one
    see the first one's new tokens instead.
    """
    session = Session.object_session(connection)
    if session is not None:
        session.refresh(connection, with_for_update=True)


def fresh_tokens(
    connection: DeviceConnection, settings: Settings, cipher: TokenCipher, now: datetime | None = None
) -> TokenSet:
    """The connection's tokens, refreshed first when the access token expires within ``oauth_refresh_margin``.

    Raises :class:`ReconsentRequired` when the connection is not active or the refresh is refused.
    """
    now = now or datetime.now(UTC)
    if connection.status != ConnectionStatus.ACTIVE:
        raise ReconsentRequired(connection.id, f"connection is {connection.status}")
    tokens = read_tokens(connection, cipher)
    if tokens is None:
        raise ReconsentRequired(connection.id, "no tokens stored")
    if not tokens.expires_within(now, settings.oauth_refresh_margin):
        return tokens
    _lock_for_refresh(connection)
    tokens = read_tokens(connection, cipher)
    if connection.status != ConnectionStatus.ACTIVE or tokens is None:
        raise ReconsentRequired(connection.id, f"connection is {connection.status}")
    if not tokens.expires_within(now, settings.oauth_refresh_margin):
        return tokens  # another worker refreshed while we waited for the lock
    return refresh_connection_tokens(connection, settings, cipher)
