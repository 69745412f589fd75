"""Fixtures of the REST API tests: a real app over real SQLite files, real Ed25519 keys and tokens.

Everything goes through HTTP as a cc-backend client would: `TestClient` over
`create_app(build_services(settings))`, the SQLite event log and job database in `tmp_path`, and
cluster.json files copied from the reference archive.
"""

from __future__ import annotations

import base64
import copy
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import build_services
from api.config import Settings
from api.keys import generate_keypair

SPECS = Path("/work/shared/specs")
EXAMPLES = SPECS / "examples"
CLUSTERS = ("fritz", "alex")

#: A fixed start time far enough in the past that running durations are positive and stable.
START = 1_675_954_353


@dataclass(frozen=True)
class Tokens:
    """Signed tokens for the three kinds of callers, and header helpers."""

    api: str
    admin: str
    user: str
    private_key: str
    public_key: str

    def headers(self, who: str = "api") -> dict[str, str]:
        """`X-Auth-Token` headers for `api`, `admin` or `user`."""
        return {"X-Auth-Token": getattr(self, who)}

    def bearer(self, who: str = "api") -> dict[str, str]:
        """`Authorization: Bearer` headers for `api`, `admin` or `user`."""
        return {"Authorization": f"Bearer {getattr(self, who)}"}


def sign(private_key_b64: str, claims: dict[str, Any]) -> str:
    """An EdDSA token as cc-backend's gen-jwt makes it, signed with a Go-format private key."""
    seed = base64.b64decode(private_key_b64)[:32]
    return jwt.encode(claims, Ed25519PrivateKey.from_private_bytes(seed), algorithm="EdDSA")


def claims(sub: str, roles: list[str], *, exp_in: int = 3600) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "roles": roles, "projects": [], "iat": now, "exp": now + exp_in}


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A fresh (JWT_PUBLIC_KEY, JWT_PRIVATE_KEY) pair, put in the environment."""
    public, private = generate_keypair()
    monkeypatch.setenv("JWT_PUBLIC_KEY", public)
    monkeypatch.setenv("JWT_PRIVATE_KEY", private)
    return public, private


@pytest.fixture
def tokens(keys: tuple[str, str]) -> Tokens:
    public, private = keys
    return Tokens(
        api=sign(private, claims("adapter", ["api"])),
        admin=sign(private, claims("boss", ["admin", "api"])),
        user=sign(private, claims("alice", ["user"])),
        private_key=private,
        public_key=public,
    )


@pytest.fixture
def archive_root(tmp_path: Path) -> Path:
    root = tmp_path / "job-archive"
    for name in CLUSTERS:
        (root / name).mkdir(parents=True)
        shutil.copy(SPECS / "archive" / name / "cluster.json", root / name / "cluster.json")
    (root / "version.txt").write_text("3\n")
    return root


AppFactory = Callable[..., TestClient]


@pytest.fixture(scope="session")
def closer() -> Iterator[ThreadPoolExecutor]:
    """Closes apps in the background: stopping the agent runner waits for its log poll (up to 0.5 s),
    which would otherwise dominate the suite's run time. Every close is awaited, and its errors
    raised, at the end of the session."""
    pending: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="close-app") as pool:
        original_submit = pool.submit

        def submit(fn: Callable[..., None], /, *args: Any) -> Future[None]:
            future = original_submit(fn, *args)
            pending.append(future)
            return future

        pool.submit = submit  # type: ignore[method-assign]
        yield pool
    for future in pending:
        future.result()


@pytest.fixture
def make_client(
    tmp_path: Path, archive_root: Path, tokens: Tokens, closer: ThreadPoolExecutor
) -> Iterator[AppFactory]:
    """Build (and start) an app from config.json-shaped overrides; every app is closed at teardown."""
    opened: list[TestClient] = []

    def factory(config: dict[str, Any] | None = None) -> TestClient:
        base = {
            "main": {"db": str(tmp_path / "job.db")},
            "archive": {"kind": "file", "path": str(archive_root)},
            "event-log": {"kind": "sqlite", "path": str(tmp_path / "events.db")},
        }
        settings = Settings.model_validate(_deep_merge(base, config or {}))
        client = TestClient(create_app(build_services(settings)), raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield factory
    for client in reversed(opened):
        closer.submit(client.__exit__, None, None, None)


@pytest.fixture
def client(make_client: AppFactory, tokens: Tokens) -> tuple[TestClient, Tokens]:
    """A started app with default settings, and tokens for it."""
    return make_client(), tokens


JobPayload = Callable[..., dict[str, Any]]


@pytest.fixture
def job_payload() -> JobPayload:
    """A start_job body on fritz (host f0101, subcluster main), with any field overridden."""

    def factory(**overrides: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "jobId": 1000,
            "user": "alice",
            "project": "proj1",
            "cluster": "fritz",
            "partition": "singlenode",
            "numNodes": 1,
            "numHwthreads": 72,
            "shared": "none",
            "monitoringStatus": 1,
            "smt": 1,
            "walltime": 3600,
            "submitTime": START - 60,
            "startTime": START,
            "resources": [{"hostname": "f0101", "hwthreads": list(range(72))}],
            "metaData": {"jobName": "test"},
        }
        payload.update(overrides)
        return payload

    return factory


def example_bytes(name: str) -> bytes:
    """The exact bytes of a reference wire example."""
    return (EXAMPLES / name).read_bytes()


def assert_error(response: Any, status: int, *fragments: str) -> dict[str, Any]:
    """cc-backend's error shape with the expected status text; the message contains each fragment."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "error"}, body
    assert body["status"] == HTTPStatus(status).phrase
    assert isinstance(body["error"], str) and body["error"]
    for fragment in fragments:
        assert fragment in body["error"], body
    return dict(body)


@pytest.fixture
def start(client: tuple[TestClient, Tokens], job_payload: JobPayload) -> Callable[..., int]:
    """Start a job through the API with overrides; returns its database id."""
    http, tok = client

    def do(**overrides: Any) -> int:
        response = http.post("/api/jobs/start_job/", json=job_payload(**overrides), headers=tok.headers())
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    return do


@pytest.fixture
def stop(client: tuple[TestClient, Tokens]) -> Callable[..., dict[str, Any]]:
    """Stop a job through the API; returns the stopped job JSON."""
    http, tok = client

    def do(job_id: int = 1000, stop_time: int = START + 100, **extra: Any) -> dict[str, Any]:
        body = {"jobId": job_id, "cluster": "fritz", "stopTime": stop_time, **extra}
        response = http.post("/api/jobs/stop_job/", json=body, headers=tok.headers())
        assert response.status_code == 200, response.text
        return dict(response.json())

    return do


@pytest.fixture
def list_jobs(client: tuple[TestClient, Tokens]) -> Callable[..., list[dict[str, Any]]]:
    """The jobs `GET /api/jobs/` lists for query parameters (asserting 200)."""
    http, tok = client

    def do(**params: Any) -> list[dict[str, Any]]:
        response = http.get("/api/jobs/", params={"items-per-page": 1000, **params}, headers=tok.headers())
        assert response.status_code == 200, response.text
        return list(response.json()["jobs"])

    return do
