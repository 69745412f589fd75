"""bcrypt password hashes interchangeable with cc-backend's (Go `golang.org/x/crypto/bcrypt`)."""

from __future__ import annotations

import bcrypt

BCRYPT_COST = 10
"""Go's `bcrypt.DefaultCost`, so hashes cost the same whichever server wrote them."""

BCRYPT_MAX_PASSWORD_BYTES = 72
"""bcrypt only keys on the first 72 bytes."""


def hash_password(plain: str) -> str:
    """Hash a password as cc-backend stores it in `user.password` (`$2a$10$…`).

    Go's `GenerateFromPassword` refuses passwords over 72 bytes rather than silently ignoring the
    tail, and so do we: a ValueError, never a hash that accepts any suffix.
    """
    raw = plain.encode("utf-8")
    if len(raw) > BCRYPT_MAX_PASSWORD_BYTES:
        raise ValueError(f"password is {len(raw)} bytes long; bcrypt accepts at most {BCRYPT_MAX_PASSWORD_BYTES}")
    # Go writes the "2a" prefix; using it too keeps imported and new rows alike.
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=BCRYPT_COST, prefix=b"2a")).decode("ascii")


def check_password(plain: str, hashed: str) -> bool:
    """True when `plain` matches `hashed`; False for a wrong password and for any malformed hash.

    Never raises: LDAP and token-only users have an empty or NULL password column, and a login
    attempt against them must simply fail. Like Go's `CompareHashAndPassword`, only the first 72
    bytes of the password count, so hashes made before Go refused long passwords still verify.
    """
    try:
        return bcrypt.checkpw(plain.encode("utf-8")[:BCRYPT_MAX_PASSWORD_BYTES], hashed.encode("ascii"))
    except (ValueError, TypeError):
        return False
