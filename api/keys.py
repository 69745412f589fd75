"""Ed25519 JWT keys and the session key, in the base64 formats cc-backend keeps in its `.env` file."""

from __future__ import annotations

import base64
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

KEY_SIZE = 32
"""Bytes in an Ed25519 public key and in a seed."""

GO_PRIVATE_KEY_SIZE = 64
"""Go's `ed25519.PrivateKey` is the 32-byte seed followed by the 32-byte public key."""

SESSION_KEY_SIZE = 32


def generate_keypair() -> tuple[str, str]:
    """A fresh (JWT_PUBLIC_KEY, JWT_PRIVATE_KEY) pair, byte-for-byte what cc-backend's gen-keypair prints."""
    private = Ed25519PrivateKey.generate()
    return _b64(_public_bytes(private.public_key())), _b64(_go_private_bytes(private))


def load_public_key(b64: str) -> Ed25519PublicKey:
    """Decode `JWT_PUBLIC_KEY`: standard base64 of the raw 32-byte key."""
    raw = _decode("JWT_PUBLIC_KEY", b64)
    if len(raw) != KEY_SIZE:
        raise ValueError(f"JWT_PUBLIC_KEY must decode to {KEY_SIZE} bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private_key(b64: str) -> Ed25519PrivateKey:
    """Decode `JWT_PRIVATE_KEY`: Go's 64-byte seed+public form, or a bare 32-byte seed.

    The public half of the Go form is redundant; we check it against the seed because a mismatch
    (a hand-edited or truncated-and-padded key) would issue tokens that nobody can verify.
    """
    raw = _decode("JWT_PRIVATE_KEY", b64)
    if len(raw) not in (KEY_SIZE, GO_PRIVATE_KEY_SIZE):
        raise ValueError(
            f"JWT_PRIVATE_KEY must decode to {GO_PRIVATE_KEY_SIZE} bytes (seed + public key) "
            f"or {KEY_SIZE} bytes (seed), got {len(raw)}"
        )
    private = Ed25519PrivateKey.from_private_bytes(raw[:KEY_SIZE])
    if len(raw) == GO_PRIVATE_KEY_SIZE and raw[KEY_SIZE:] != _public_bytes(private.public_key()):
        raise ValueError("JWT_PRIVATE_KEY is inconsistent: its last 32 bytes are not the seed's public key")
    return private


def encode_public_key(key: Ed25519PublicKey) -> str:
    """The `JWT_PUBLIC_KEY` form of a public key, e.g. to check a private key against it."""
    return _b64(_public_bytes(key))


def generate_session_key() -> str:
    """A fresh `SESSION_KEY`: cc-backend base64-decodes it and keys its cookie store with the bytes."""
    return _b64(secrets.token_bytes(SESSION_KEY_SIZE))


def _decode(name: str, b64: str) -> bytes:
    # Surrounding whitespace is what editors and `echo` leave in .env files; anything else is an error.
    text = b64.strip()
    if not text:
        raise ValueError(f"{name} is empty")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise ValueError(f"{name} is not valid standard base64: {exc}") from None


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _go_private_bytes(key: Ed25519PrivateKey) -> bytes:
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return seed + _public_bytes(key.public_key())


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
