"""A provider connection's OAuth tokens: the one place that encrypts, decrypts and updates them.

Shared by the connect flow (``app/connections``), the wearable fetch-after-notify clients and the Google
Calendar / Tasks sync, so that every caller stores tokens the same way (AES-GCM bound to the column,
``app.core.crypto``) and marks a connection that lost consent the same way. Functions change the row in memory
only; the caller's transaction boundary commits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.crypto import ACCESS_TOKEN_CONTEXT, REFRESH_TOKEN_CONTEXT, TokenCipher
from app.models.device import DeviceConnection


class ConnectionStatus(enum.StrEnum):
    ACTIVE = "active"
    # A refresh failed or the provider answered 401: the user must authorise us again (how WHOOP and Oura
    # revocations show up). Data keeps flowing from nowhere until then; the app shows a re-connect prompt.
    NEEDS_RECONSENT = "needs_reconsent"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class TokenSet:
    """Plaintext tokens, only ever held in memory."""

    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None
    scopes: str | None = None

    def expires_within(self, now: datetime, margin: timedelta) -> bool:
        """True when the access token is (nearly) expired and should be refreshed before use."""
        return self.expires_at is not None and self.expires_at - margin <= now


def cipher_for(secret_key: str) -> TokenCipher:
    return TokenCipher(secret_key)


def read_tokens(connection: DeviceConnection, cipher: TokenCipher) -> TokenSet | None:
    """The connection's tokens, or ``None`` when it holds none (e.g. a Terra or Garmin push-only link)."""
    if connection.access_token_encrypted is None:
        return None
    refresh = (
        cipher.decrypt(connection.refresh_token_encrypted, context=REFRESH_TOKEN_CONTEXT)
        if connection.refresh_token_encrypted is not None
        else None
    )
    return TokenSet(
        access_token=cipher.decrypt(connection.access_token_encrypted, context=ACCESS_TOKEN_CONTEXT),
        refresh_token=refresh,
        expires_at=connection.token_expires_at,
        scopes=connection.scopes,
    )


def write_tokens(connection: DeviceConnection, tokens: TokenSet, cipher: TokenCipher) -> None:
    """Store ``tokens`` encrypted. A refresh that returns no new refresh token keeps the old one."""
    connection.access_token_encrypted = cipher.encrypt(tokens.access_token, context=ACCESS_TOKEN_CONTEXT)
    if tokens.refresh_token is not None:
        connection.refresh_token_encrypted = cipher.encrypt(
            tokens.refresh_token, context=REFRESH_TOKEN_CONTEXT
        )
    connection.token_expires_at = tokens.expires_at
    if tokens.scopes is not None:
        connection.scopes = tokens.scopes
    connection.status = ConnectionStatus.ACTIVE
    connection.status_reason = None


def clear_tokens(connection: DeviceConnection) -> None:
    connection.access_token_encrypted = None
    connection.refresh_token_encrypted = None
    connection.token_expires_at = None


def mark_needs_reconsent(connection: DeviceConnection, reason: str) -> None:
    """The provider no longer honours our tokens; keep the row (and its data), ask the user to re-connect."""
    connection.status = ConnectionStatus.NEEDS_RECONSENT
    connection.status_reason = reason[:1024]


def mark_revoked(connection: DeviceConnection, now: datetime, reason: str | None = None) -> None:
    connection.status = ConnectionStatus.REVOKED
    connection.status_reason = None if reason is None else reason[:1024]
    connection.revoked_at = now
    clear_tokens(connection)


# A deleted connection's tokens wait in ``pending_revocations`` until the provider confirmed the revocation.
# They are re-encrypted for that table's columns (not copied): a ciphertext only ever decrypts where it lives.
PENDING_ACCESS_TOKEN_CONTEXT = "pending_revocations.access_token_encrypted"
PENDING_REFRESH_TOKEN_CONTEXT = "pending_revocations.refresh_token_encrypted"


@dataclass(frozen=True, slots=True)
class SealedTokens:
    """Tokens encrypted for ``pending_revocations``."""

    access_token_encrypted: str | None
    refresh_token_encrypted: str | None
    expires_at: datetime | None


def seal_for_revocation(tokens: TokenSet | None, cipher: TokenCipher) -> SealedTokens:
    if tokens is None:
        return SealedTokens(None, None, None)
    return SealedTokens(
        access_token_encrypted=cipher.encrypt(tokens.access_token, context=PENDING_ACCESS_TOKEN_CONTEXT),
        refresh_token_encrypted=(
            cipher.encrypt(tokens.refresh_token, context=PENDING_REFRESH_TOKEN_CONTEXT)
            if tokens.refresh_token is not None
            else None
        ),
        expires_at=tokens.expires_at,
    )


def open_for_revocation(sealed: SealedTokens, cipher: TokenCipher) -> TokenSet | None:
    if sealed.access_token_encrypted is None:
        return None
    return TokenSet(
        access_token=cipher.decrypt(sealed.access_token_encrypted, context=PENDING_ACCESS_TOKEN_CONTEXT),
        refresh_token=(
            cipher.decrypt(sealed.refresh_token_encrypted, context=PENDING_REFRESH_TOKEN_CONTEXT)
            if sealed.refresh_token_encrypted is not None
            else None
        ),
        expires_at=sealed.expires_at,
    )


# The PKCE verifier of an authorization in flight (``oauth_states``): as secret as the code it redeems.
CODE_VERIFIER_CONTEXT = "oauth_states.code_verifier_encrypted"


def seal_code_verifier(verifier: str, cipher: TokenCipher) -> str:
    return cipher.encrypt(verifier, context=CODE_VERIFIER_CONTEXT)


def open_code_verifier(sealed: str, cipher: TokenCipher) -> str:
    return cipher.decrypt(sealed, context=CODE_VERIFIER_CONTEXT)
