"""API tokens: random, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "rhy_"
# Characters kept in clear text to tell tokens apart ("rhy_Ab3x…"); far too few to guess the rest.
DISPLAY_PREFIX_LENGTH = 8


def new_token() -> str:
    """A fresh user token with 256 bits of randomness."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of the token. Tokens carry 256 random bits, so a fast unsalted hash suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[:DISPLAY_PREFIX_LENGTH]


def constant_time_equals(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
