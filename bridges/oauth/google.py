"""google-auth credentials for a Google connection (``google``: Calendar + Tasks; ``google-health``).

Google's client libraries (google-api-python-client) take ``google.oauth2.credentials.Credentials``.
Build them with :func:`credentials_for`, which starts from :func:`bridges.oauth.fresh_tokens` (refreshed
before expiry, under the row lock; a refused refresh marks the connection ``needs_reconsent``). If the
library refreshes on its own during a call (a 401 mid-sync), hand the credentials back to
:func:`store_credentials` before the transaction commits, or the next run would start from a token Google
already replaced.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.oauth2.credentials import Credentials

from app.core.config import Settings
from app.core.crypto import TokenCipher
from app.models.device import DeviceConnection
from bridges.connections import TokenSet, read_tokens, write_tokens
from bridges.oauth.providers import oauth_provider
from bridges.oauth.tokens import NotAnOAuthConnection, fresh_tokens


def credentials_for(
    connection: DeviceConnection, settings: Settings, cipher: TokenCipher, now: datetime | None = None
) -> Credentials:
    """Credentials the Google client can use (and refresh) for ``connection``."""
    provider = oauth_provider(connection.provider)
    endpoints = provider.endpoints(settings) if provider is not None else None
    if provider is None or endpoints is None or not provider.name.startswith("google"):
        raise NotAnOAuthConnection(connection.provider)
    tokens = fresh_tokens(connection, settings, cipher, now)
    return Credentials(  # type: ignore[no-untyped-call]
        token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_uri=endpoints.token_url,
        client_id=endpoints.client_id,
        client_secret=endpoints.client_secret,
        scopes=(tokens.scopes or provider.scope).split(),
        # google-auth compares expiry with a naive UTC clock.
        expiry=None if tokens.expires_at is None else tokens.expires_at.astimezone(UTC).replace(tzinfo=None),
    )


def store_credentials(connection: DeviceConnection, credentials: Credentials, cipher: TokenCipher) -> bool:
    """Store what the library refreshed, if anything; ``True`` when the stored tokens changed."""
    current = read_tokens(connection, cipher)
    token = credentials.token
    if not isinstance(token, str) or not token or (current is not None and current.access_token == token):
        return False
    expiry = credentials.expiry
    write_tokens(
        connection,
        TokenSet(
            access_token=token,
            refresh_token=credentials.refresh_token,
            expires_at=None if expiry is None else expiry.replace(tzinfo=UTC),
            scopes=" ".join(credentials.scopes) if credentials.scopes else None,
        ),
        cipher,
    )
    return True
