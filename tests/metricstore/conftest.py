"""Shared fixtures of the metric store tests: real cluster.json files, a settable clock, Ed25519 auth."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from api.errors import install_error_handlers
from api.metricstore_routes import build_metricstore_router
from metricstore.settings import MetricStoreSettings
from metricstore.store import MetricStore
from tests.support.natsserver import nats_server_factory, nats_url  # noqa: F401  (fixtures)
from tests.support.specs import find_specs

SPECS = find_specs()
T0 = 1675954380  # the sample time of examples/metrics.lp


class Clock:
    """The one faked thing: wall-clock seconds, set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def cluster_docs() -> list[dict[str, Any]]:
    return [json.loads((SPECS / "archive" / c / "cluster.json").read_text()) for c in ("fritz", "alex")]


@pytest.fixture(scope="session")
def metrics_lp() -> bytes:
    return (SPECS / "examples" / "metrics.lp").read_bytes()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 30)


@pytest.fixture
def make_store(tmp_path: Path, cluster_docs: list[dict[str, Any]], clock: Clock) -> Callable[..., MetricStore]:
    def make(config: dict[str, Any] | None = None, **kwargs: Any) -> MetricStore:
        cfg = {"checkpoints": {"directory": str(tmp_path / "checkpoints")},
               "cleanup": {"mode": "delete", "directory": str(tmp_path / "archive")}, **(config or {})}
        return MetricStore(MetricStoreSettings.model_validate(cfg), cluster_docs, clock=clock, **kwargs)

    return make


@pytest.fixture
def store(make_store: Callable[..., MetricStore]) -> MetricStore:
    return make_store()


class Keys:
    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.public: Ed25519PublicKey = self.private.public_key()

    def token(self, sub: str = "collector", roles: tuple[str, ...] = ("api",), ttl: int = 3600) -> str:
        claims = {"sub": sub, "roles": list(roles), "exp": int(time.time()) + ttl}
        return jwt.encode(claims, self.private, algorithm="EdDSA")


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


def make_auth(keys: Keys) -> Callable[[Request], dict[str, Any]]:
    """Ed25519 JWT from `Authorization: Bearer` or `X-Auth-Token`, as cc-backend checks API tokens."""

    def auth(request: Request) -> dict[str, Any]:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-auth-token")
        if not token:
            raise HTTPException(401, "missing token (Authorization: Bearer or X-Auth-Token)")
        try:
            return dict(jwt.decode(token, keys.public, algorithms=["EdDSA"]))
        except jwt.PyJWTError as exc:
            raise HTTPException(401, f"invalid token: {exc}") from None

    return auth


@pytest.fixture
def api(store: MetricStore, keys: Keys) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_metricstore_router(store, make_auth(keys)))
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {keys.token()}"
    return client
