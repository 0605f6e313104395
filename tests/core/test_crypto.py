"""AES-GCM encryption of OAuth tokens: round trip, tamper detection, context binding, key separation."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.crypto import ACCESS_TOKEN_CONTEXT, REFRESH_TOKEN_CONTEXT, DecryptionError, TokenCipher

CIPHER = TokenCipher("k" * 48)


@given(st.text(max_size=2000))
def test_round_trip(plaintext: str) -> None:
    sealed = CIPHER.encrypt(plaintext, context=ACCESS_TOKEN_CONTEXT)
    assert sealed.startswith("v1.")
    assert CIPHER.decrypt(sealed, context=ACCESS_TOKEN_CONTEXT) == plaintext


def test_same_plaintext_encrypts_differently() -> None:
    a = CIPHER.encrypt("ya29.secret", context=ACCESS_TOKEN_CONTEXT)
    b = CIPHER.encrypt("ya29.secret", context=ACCESS_TOKEN_CONTEXT)
    assert a != b
    assert "ya29" not in a


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_flipped_bit_fails(position: int, mask: int) -> None:
    sealed = CIPHER.encrypt("refresh-token-value", context=REFRESH_TOKEN_CONTEXT)
    raw = bytearray(base64.urlsafe_b64decode(sealed[3:]))
    raw[position % len(raw)] ^= mask
    tampered = "v1." + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(DecryptionError):
        CIPHER.decrypt(tampered, context=REFRESH_TOKEN_CONTEXT)


def test_value_moved_to_another_column_fails() -> None:
    sealed = CIPHER.encrypt("access", context=ACCESS_TOKEN_CONTEXT)
    with pytest.raises(DecryptionError):
        CIPHER.decrypt(sealed, context=REFRESH_TOKEN_CONTEXT)


def test_other_key_fails() -> None:
    sealed = CIPHER.encrypt("access", context=ACCESS_TOKEN_CONTEXT)
    with pytest.raises(DecryptionError):
        TokenCipher("z" * 48).decrypt(sealed, context=ACCESS_TOKEN_CONTEXT)


@pytest.mark.parametrize("garbage", ["", "v1.", "v2.AAAA", "v1.!!!!", "v1.AAAA", "plain-token"])
def test_malformed_ciphertext_fails_cleanly(garbage: str) -> None:
    with pytest.raises(DecryptionError):
        CIPHER.decrypt(garbage, context=ACCESS_TOKEN_CONTEXT)


def test_empty_key_refused() -> None:
    with pytest.raises(ValueError):
        TokenCipher("")
