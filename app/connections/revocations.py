"""Giving a deleted connection's grant back at the provider (worker side, synchronous).

Each ``pending_revocations`` row is processed under ``FOR UPDATE SKIP LOCKED`` (two workers never call the
provider for the same row at once): the provider's teardown first (it may need a valid token, e.g. to stop
Google push channels), then the token revocation; the row is deleted once both are done. A failure records
the attempt and schedules the next one with exponential backoff; after ``revocation_max_attempts`` the row
stays for operators (``gave_up_at``) instead of being dropped. Steps already done are remembered
(``teardown_done_at``, refreshed tokens), and each step is idempotent, so a retry repeats nothing harmful.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

import bridges.providers  # registers every provider's teardown
import bridges.terra.account  # noqa: F401  (registers the Terra teardown)
from app.core.config import Settings
from app.core.crypto import TokenCipher
from app.models import PendingRevocation
from bridges.connections import (
    SealedTokens,
    TokenSet,
    cipher_for,
    open_for_revocation,
    seal_for_revocation,
)
from bridges.oauth import (
    OAuthGrantError,
    RevokeStyle,
    oauth_provider,
    refresh_tokens,
    revoke_tokens,
    teardown_for,
)

log = structlog.get_logger(__name__)


class ProviderNotConfigured(Exception):
    """The provider's credentials were removed from settings: we cannot revoke until they are back."""


def backoff(settings: Settings, attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: the base doubled per failure, capped."""
    delay: timedelta = settings.revocation_retry_backoff * (2 ** max(attempts - 1, 0))
    return min(delay, settings.revocation_retry_backoff_max)


def _tokens(row: PendingRevocation, cipher: TokenCipher) -> TokenSet | None:
    sealed = SealedTokens(row.access_token_encrypted, row.refresh_token_encrypted, row.token_expires_at)
    return open_for_revocation(sealed, cipher)


def _store_tokens(row: PendingRevocation, tokens: TokenSet | None, cipher: TokenCipher) -> None:
    sealed = seal_for_revocation(tokens, cipher)
    row.access_token_encrypted = sealed.access_token_encrypted
    row.refresh_token_encrypted = sealed.refresh_token_encrypted
    row.token_expires_at = sealed.expires_at


def _give_back(row: PendingRevocation, settings: Settings, cipher: TokenCipher, now: datetime) -> None:
    tokens = _tokens(row, cipher)
    provider = oauth_provider(row.provider)
    endpoints = provider.endpoints(settings) if provider is not None else None
    if provider is not None and tokens is not None and endpoints is None:
        raise ProviderNotConfigured(row.provider)
    if (
        provider is not None
        and endpoints is not None
        and tokens is not None
        and tokens.refresh_token is not None
        and provider.revoke_style is not RevokeStyle.RFC7009
        and tokens.expires_within(now, settings.oauth_refresh_margin)
    ):
        # WHOOP and Oura revoke with the access token: an expired one would be refused, not revoked.
        try:
            tokens = refresh_tokens(provider, endpoints, settings, tokens)
        except OAuthGrantError:
            tokens = None  # the grant is already gone at the provider: nothing left to revoke
        _store_tokens(row, tokens, cipher)  # a rotated refresh token must survive a later failure
    teardown = teardown_for(row.provider)
    if row.teardown_payload is not None and row.teardown_done_at is None and teardown is not None:
        teardown.run(row.teardown_payload, tokens, settings)
        row.teardown_done_at = now
    if provider is not None and endpoints is not None and tokens is not None:
        revoke_tokens(provider, endpoints, settings, tokens)


def process(session: Session, settings: Settings, revocation_id: uuid.UUID, now: datetime) -> bool:
    """Try one pending revocation; ``True`` when nothing is left to do for it (done, or taken elsewhere)."""
    statement = (
        select(PendingRevocation)
        .where(PendingRevocation.id == revocation_id, PendingRevocation.gave_up_at.is_(None))
        .with_for_update(skip_locked=True)
    )
    row = session.scalars(statement).first()
    if row is None:
        return True
    cipher = cipher_for(settings.secret_key.get_secret_value())
    try:
        _give_back(row, settings, cipher, now)
    except Exception as exc:  # any failure is retried later; the row keeps what succeeded so far
        row.attempts += 1
        row.last_error = f"{type(exc).__name__}: {exc}"[:1024]
        if row.attempts >= settings.revocation_max_attempts:
            row.gave_up_at = now
            log.error(
                "revocation_gave_up", provider=row.provider, revocation_id=str(row.id), error=row.last_error
            )
        else:
            row.next_attempt_at = now + backoff(settings, row.attempts)
            log.warning(
                "revocation_failed", provider=row.provider, attempts=row.attempts, error=row.last_error
            )
        return False
    session.delete(row)
    log.info("revocation_done", provider=row.provider, connection_id=str(row.connection_id))
    return True


def due(session: Session, now: datetime, limit: int = 100) -> list[uuid.UUID]:
    """Pending revocations whose next attempt is due (oldest first)."""
    statement = (
        select(PendingRevocation.id)
        .where(PendingRevocation.next_attempt_at <= now, PendingRevocation.gave_up_at.is_(None))
        .order_by(PendingRevocation.next_attempt_at)
        .limit(limit)
    )
    return list(session.scalars(statement).all())
