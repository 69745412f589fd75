"""Verified tokens are remembered only until they expire."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.auth import JWTAuthenticator, Principal
from api.errors import ApiError
from api.keys import generate_keypair


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_cached_token_still_expires() -> None:
    public, private = generate_keypair()
    clock = Clock(1_000_000.0)
    auth = JWTAuthenticator(public, private, timedelta(seconds=60), clock=clock)
    token = auth.issue("adapter", ["api"])
    assert auth.verify(token).username == "adapter"
    assert auth.verify(token).username == "adapter"  # from the cache
    clock.now += 61
    with pytest.raises(ApiError) as caught:
        auth.verify(token)
    assert caught.value.status == 401 and "expired" in caught.value.message


def test_tokens_are_not_cached_when_the_user_table_decides() -> None:
    public, private = generate_keypair()
    users = {"adapter": Principal("adapter", frozenset({"api"}))}
    auth = JWTAuthenticator(public, private, timedelta(hours=1), user_lookup=users.get)
    token = auth.issue("adapter", ["api"])
    assert auth.verify(token).roles == frozenset({"api"})
    del users["adapter"]
    with pytest.raises(ApiError, match="unknown user adapter"):
        auth.verify(token)
