"""Encryption at rest for OAuth tokens: AES-256-GCM with a key derived from ``RHYTHM_SECRET_KEY``.

Ciphertexts are versioned (``v1.<base64url(nonce || ciphertext+tag)>``) so the key or algorithm can change
later, and bound to where they are stored (``table.column``) as associated data: a value copied into another
column, or altered by one bit, fails to decrypt instead of yielding a wrong token
(OWASP Cryptographic Storage; the same idea as Polar's encryption context).
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1"
_NONCE_BYTES = 12


class DecryptionError(Exception):
    """The ciphertext is malformed, was tampered with, belongs to another column, or another key made it."""


def _derive_key(secret_key: str) -> bytes:
    # HKDF separates this key from any other use of the secret (token hashing, signing).
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"rhythm/token-encryption/v1").derive(
        secret_key.encode()
    )


class TokenCipher:
    """Encrypts and decrypts secrets bound to a ``table.column`` context."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("an empty secret key cannot encrypt anything")
        self._aead = AESGCM(_derive_key(secret_key))

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, *, context: str) -> str:
        version, sep, body = token.partition(".")
        if not sep or version != _VERSION:
            raise DecryptionError(f"unknown ciphertext version {version!r}")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
        except ValueError as exc:
            raise DecryptionError("ciphertext is not valid base64") from exc
        if len(raw) <= _NONCE_BYTES:
            raise DecryptionError("ciphertext too short")
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()).decode()
        except InvalidTag as exc:
            raise DecryptionError("ciphertext failed authentication") from exc


ACCESS_TOKEN_CONTEXT = "device_connections.access_token_encrypted"
REFRESH_TOKEN_CONTEXT = "device_connections.refresh_token_encrypted"
