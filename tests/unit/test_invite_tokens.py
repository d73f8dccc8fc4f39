"""Invite tokens that can be sent again (issue 16): derived, never stored."""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.asymmetric import ed25519

from kiosk.crypto.keys import derived_secret
from kiosk.signalling.context import INVITE_KEY_PURPOSE
from kiosk.signalling.visitors.invites import derive_token, hash_token
from kiosk.signalling.web.pages import TOKEN_PATTERN


def test_the_same_booking_and_nonce_give_the_same_token_and_a_new_nonce_another() -> None:
    key = b"k" * 32
    token = derive_token(key, "booking-1", "nonce-a")
    assert token == derive_token(key, "booking-1", "nonce-a")
    assert token != derive_token(key, "booking-1", "nonce-b")  # a new link
    assert token != derive_token(key, "booking-2", "nonce-a")
    assert token != derive_token(b"x" * 32, "booking-1", "nonce-a")  # the key is the secret
    assert re.fullmatch(TOKEN_PATTERN, token) and len(token) == 43  # 256 bits
    assert hash_token(token) != token


def test_the_invite_key_comes_from_the_server_key_and_only_for_its_purpose() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    secret = derived_secret(key, INVITE_KEY_PURPOSE)
    assert len(secret) == 32
    assert secret == derived_secret(key, INVITE_KEY_PURPOSE)  # every node derives the same
    assert secret != derived_secret(key, b"another purpose")
    assert secret != derived_secret(ed25519.Ed25519PrivateKey.generate(), INVITE_KEY_PURPOSE)
