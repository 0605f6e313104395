"""Account linking over OAuth 2: the providers, token refresh, revocation, and per-provider teardown.

``bridges.connections`` stores the tokens (encrypted) and the connection status; this package talks to the
providers. The HTTP routes live in ``app.connections``.
"""

from bridges.oauth.client import (
    OAuthGrantError,
    ProviderUnavailable,
    authorization_url,
    exchange_code,
    fetch_user_id,
    new_code_verifier,
    new_state,
    refresh_tokens,
    revoke_tokens,
)
from bridges.oauth.providers import (
    PROVIDERS,
    OAuthEndpoints,
    OAuthProvider,
    ProfileError,
    RevokeStyle,
    oauth_provider,
)
from bridges.oauth.teardown import Teardown, register_teardown, teardown_for
from bridges.oauth.tokens import (
    NotAnOAuthConnection,
    ReconsentRequired,
    fresh_tokens,
    refresh_connection_tokens,
)

__all__ = [
    "PROVIDERS",
    "NotAnOAuthConnection",
    "OAuthEndpoints",
    "OAuthGrantError",
    "OAuthProvider",
    "ProfileError",
    "ProviderUnavailable",
    "ReconsentRequired",
    "RevokeStyle",
    "Teardown",
    "authorization_url",
    "exchange_code",
    "fetch_user_id",
    "fresh_tokens",
    "new_code_verifier",
    "new_state",
    "oauth_provider",
    "refresh_connection_tokens",
    "refresh_tokens",
    "register_teardown",
    "revoke_tokens",
    "teardown_for",
]
