"""Linking provider accounts to users, listing them, and giving them back.

* Authorize → callback (server-side authorization-code flow): the ``state`` is random, stored only as a keyed
  digest bound to the provider, single use (the callback deletes it first thing) and expiring; the PKCE
  verifier stays on the server. The callback trades the code at the provider (Authlib), reads the account id
  from the provider's profile endpoint with the new token, refuses an account linked to another user, stores
  the tokens encrypted (``bridges.connections``) and enqueues the provider's on-link job after the commit.
* Disconnect (and user deletion) never waits on the provider: the tokens and the provider's teardown payload
  move to ``pending_revocations`` in the same transaction that deletes the connection, and a worker gives the
  grant back (``app.connections.revocations``), retrying until the provider confirms.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import bridges.providers  # registers every provider's webhook check and teardown
import bridges.terra.account  # noqa: F401  (registers the Terra teardown)
from app.connections.repository import ConnectionRepository, RevocationRepository, StateRepository
from app.connections.schemas import (
    ConnectionPublic,
    ConnectionTokensCreate,
    TerraSessionCreate,
    TerraSessionPublic,
)
from app.core.config import Settings
from app.core.crypto import DecryptionError, TokenCipher
from app.core.errors import AppError, NotFoundError
from app.core.jobs import Job, enqueue
from app.core.tasks import REVOKE_CONNECTION
from app.models import DeviceConnection, OAuthState, PendingRevocation, User
from bridges.connections import (
    ConnectionStatus,
    TokenSet,
    cipher_for,
    open_code_verifier,
    read_tokens,
    seal_code_verifier,
    seal_for_revocation,
    write_tokens,
)
from bridges.oauth import (
    OAuthEndpoints,
    OAuthGrantError,
    OAuthProvider,
    ProfileError,
    ProviderUnavailable,
    authorization_url,
    exchange_code,
    fetch_user_id,
    new_code_verifier,
    new_state,
    oauth_provider,
    teardown_for,
)
from bridges.terra.account import TerraNotConfigured, create_widget_session

log = structlog.get_logger(__name__)

# 424 Failed Dependency: the provider (not the client, not us) failed; the client may retry later. A 5xx
# would page us for someone else's outage and make clients treat it as our bug.
PROVIDER_FAILED = 424


class LinkFailed(AppError):
    """Linking failed after the ``state`` was consumed: answered, but the consumption is still committed."""


def _cipher(settings: Settings) -> TokenCipher:
    return cipher_for(settings.secret_key.get_secret_value())


def _configured(name: str, settings: Settings) -> tuple[OAuthProvider, OAuthEndpoints]:
    provider = oauth_provider(name)
    endpoints = provider.endpoints(settings) if provider is not None else None
    if provider is None or endpoints is None:
        raise NotFoundError(f"Unknown or unconfigured provider {name[:32]!r}")
    return provider, endpoints


def state_digest(settings: Settings, provider: str, state: str) -> str:
    """A keyed digest of ``state``: a stolen table replays nothing; a state fits one provider only."""
    key = hashlib.sha256(b"rhythm/oauth-state/v1|" + settings.secret_key.get_secret_value().encode()).digest()
    return hmac.new(key, f"{provider}|{state}".encode(), hashlib.sha256).hexdigest()


def to_public(connection: DeviceConnection) -> ConnectionPublic:
    return ConnectionPublic(
        provider=connection.provider,
        external_user_id=connection.external_user_id,
        status=connection.status,
        status_reason=connection.status_reason,
        scopes=(connection.scopes or "").split(),
        created_at=connection.created_at,
        updated_at=connection.updated_at,
    )


async def start_authorization(
    session: AsyncSession, settings: Settings, user: User, provider_name: str, now: datetime
) -> str:
    """Record a pending authorization for ``user`` and return the provider's consent URL."""
    provider, endpoints = _configured(provider_name, settings)
    states = StateRepository(session)
    await states.purge_expired(now)
    state = new_state()
    verifier = new_code_verifier() if provider.pkce else None
    await states.add(
        OAuthState(
            user_id=user.id,
            provider=provider.name,
            state_digest=state_digest(settings, provider.name, state),
            code_verifier_encrypted=seal_code_verifier(verifier, _cipher(settings)) if verifier else None,
            expires_at=now + settings.oauth_state_ttl,
        )
    )
    log.info("oauth_authorize_started", provider=provider.name, user_id=str(user.id), pkce=bool(verifier))
    return authorization_url(provider, endpoints, state, verifier)


def _provider_failure(provider: OAuthProvider, exc: Exception, step: str) -> LinkFailed:
    if isinstance(exc, OAuthGrantError):
        # The code was refused (used twice, expired, PKCE mismatch) or the token was rejected: start again.
        return LinkFailed(
            400,
            f"{provider.name} refused the authorization ({exc.error}); start the connection again",
            code="authorization_failed",
            details={"provider": provider.name, "step": step, "error": exc.error},
        )
    if isinstance(exc, ProfileError):
        return LinkFailed(
            PROVIDER_FAILED,
            f"{provider.name}'s profile did not identify the account",
            code="provider_error",
            details={"provider": provider.name, "step": step},
        )
    return LinkFailed(
        PROVIDER_FAILED,
        f"{provider.name} is unavailable; try again later",
        code="provider_unavailable",
        details={"provider": provider.name, "step": step},
    )


async def complete_authorization(
    session: AsyncSession,
    settings: Settings,
    provider_name: str,
    *,
    code: str | None,
    state: str | None,
    error: str | None,
    now: datetime,
) -> ConnectionPublic:
    """Finish the flow the provider redirected back from. The user is the one who started it (``state``)."""
    provider, endpoints = _configured(provider_name, settings)
    if not state:
        raise AppError(400, "The callback has no state", code="invalid_state")
    pending = await StateRepository(session).consume(
        provider.name, state_digest(settings, provider.name, state)
    )
    if pending is None:
        raise AppError(400, "Unknown or already used state; start the connection again", code="invalid_state")
    # From here on the state is used up, whatever happens: LinkFailed lets the endpoint commit that.
    if pending.expires_at <= now:
        raise LinkFailed(400, "The authorization expired; start the connection again", code="state_expired")
    if error:
        denied = error == "access_denied"
        raise LinkFailed(
            400,
            "The authorization was declined at the provider" if denied else "The provider reported an error",
            code="authorization_denied" if denied else "authorization_failed",
            details={"provider": provider.name, "error": error[:64]},
        )
    if not code:
        raise LinkFailed(400, "The callback has no code", code="invalid_request")
    verifier = (
        open_code_verifier(pending.code_verifier_encrypted, _cipher(settings))
        if pending.code_verifier_encrypted
        else None
    )
    try:
        tokens = await exchange_code(provider, endpoints, settings, code, verifier)
    except (OAuthGrantError, ProviderUnavailable) as exc:
        log.warning("oauth_exchange_failed", provider=provider.name, error=str(exc)[:200])
        raise _provider_failure(provider, exc, "token") from exc
    return await _link(session, settings, provider, endpoints, pending.user_id, tokens)


async def link_with_tokens(
    session: AsyncSession,
    settings: Settings,
    user: User,
    provider_name: str,
    data: ConnectionTokensCreate,
    now: datetime,
) -> ConnectionPublic:
    """Link an account from tokens the app obtained itself; the account id still comes from the provider."""
    provider, endpoints = _configured(provider_name, settings)
    tokens = TokenSet(
        access_token=data.access_token,
        refresh_token=data.refresh_token,
        expires_at=None if data.expires_in is None else now + timedelta(seconds=data.expires_in),
        scopes=data.scope,
    )
    return await _link(session, settings, provider, endpoints, user.id, tokens)


async def _link(
    session: AsyncSession,
    settings: Settings,
    provider: OAuthProvider,
    endpoints: OAuthEndpoints,
    user_id: uuid.UUID,
    tokens: TokenSet,
) -> ConnectionPublic:
    try:
        external_id = await fetch_user_id(provider, endpoints, settings, tokens.access_token)
    except (OAuthGrantError, ProviderUnavailable, ProfileError) as exc:
        log.warning("oauth_profile_failed", provider=provider.name, error=str(exc)[:200])
        raise _provider_failure(provider, exc, "profile") from exc
    repository = ConnectionRepository(session)
    connection = await repository.by_account_locked(provider.name, external_id)
    if connection is not None and connection.user_id != user_id:
        if connection.status != ConnectionStatus.REVOKED:
            log.warning("oauth_account_linked_elsewhere", provider=provider.name, user_id=str(user_id))
            raise LinkFailed(
                409,
                f"This {provider.name} account is already linked to another user",
                code="account_already_linked",
            )
        # Its owner revoked it at the provider (Terra deauth, …): the account is free to link again.
        await repository.delete(connection)
        connection = None
    created = connection is None
    if connection is None:
        connection = DeviceConnection(user_id=user_id, provider=provider.name, external_user_id=external_id)
        try:
            async with session.begin_nested():
                await repository.add(connection)
        except IntegrityError as exc:
            # Another request linked the same account between our read and our insert.
            raise LinkFailed(
                409,
                f"This {provider.name} account is already linked to another user",
                code="account_already_linked",
            ) from exc
    write_tokens(connection, tokens, _cipher(settings))
    await session.flush()
    await session.refresh(connection)
    enqueue(session, settings, Job(provider.on_link_task, args=(str(connection.id),)))
    log.info("connection_linked", provider=provider.name, user_id=str(user_id), created=created)
    return to_public(connection)


async def list_connections(session: AsyncSession, user: User) -> list[ConnectionPublic]:
    return [to_public(c) for c in await ConnectionRepository(session).list_for_user(user.id)]


async def disconnect(
    session: AsyncSession, settings: Settings, user: User, provider_name: str, now: datetime
) -> None:
    """Delete the user's connections to ``provider``; their revocation is queued, not awaited."""
    connections = await ConnectionRepository(session).for_user_and_provider(user.id, provider_name, lock=True)
    if not connections:
        raise NotFoundError("No such connection")
    for connection in connections:
        await _retire(session, settings, connection, now)


async def disconnect_all(session: AsyncSession, settings: Settings, user_id: uuid.UUID, now: datetime) -> int:
    """Queue the revocation of every connection of a user about to be deleted; returns how many."""
    connections = await ConnectionRepository(session).for_user_locked(user_id)
    for connection in connections:
        await _retire(session, settings, connection, now)
    return len(connections)


async def _retire(
    session: AsyncSession, settings: Settings, connection: DeviceConnection, now: datetime
) -> None:
    cipher = _cipher(settings)
    teardown = teardown_for(connection.provider)
    # While the rows still exist (e.g. Google push channels go with the connection).
    payload = await session.run_sync(teardown.collect, connection) if teardown is not None else None
    try:
        tokens = read_tokens(connection, cipher)
    except DecryptionError:
        # Unreadable (secret key changed): nothing we could revoke with; deleting them is all we can do.
        log.error(
            "connection_tokens_unreadable", provider=connection.provider, connection_id=str(connection.id)
        )
        tokens = None
    if tokens is not None or payload is not None:
        sealed = seal_for_revocation(tokens, cipher)
        revocation = await RevocationRepository(session).add(
            PendingRevocation(
                provider=connection.provider,
                connection_id=connection.id,
                access_token_encrypted=sealed.access_token_encrypted,
                refresh_token_encrypted=sealed.refresh_token_encrypted,
                token_expires_at=sealed.expires_at,
                teardown_payload=payload,
                next_attempt_at=now,
            )
        )
        enqueue(session, settings, Job(REVOKE_CONNECTION, args=(str(revocation.id),)))
    await ConnectionRepository(session).delete(connection)
    log.info("connection_disconnected", provider=connection.provider, connection_id=str(connection.id))


async def create_terra_session(
    settings: Settings, user: User, data: TerraSessionCreate
) -> TerraSessionPublic:
    """Open a Terra widget session whose ``reference_id`` is the caller's user id."""
    try:
        answer = await create_widget_session(settings, str(user.id), data.providers, data.language)
    except TerraNotConfigured as exc:
        raise NotFoundError("Terra is not configured") from exc
    except ProviderUnavailable as exc:
        log.warning("terra_widget_session_failed", error=str(exc)[:200])
        raise AppError(
            PROVIDER_FAILED, "Terra is unavailable; try again later", code="provider_unavailable"
        ) from exc
    session_id = answer.get("session_id")
    expires_in = answer.get("expires_in")
    return TerraSessionPublic(
        url=answer["url"],
        session_id=session_id if isinstance(session_id, str) else None,
        expires_in=expires_in if isinstance(expires_in, int) and not isinstance(expires_in, bool) else None,
    )
