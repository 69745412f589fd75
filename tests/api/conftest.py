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
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import build_services
from api.config import Settings
from api.keys import generate_keypair
from streams.events import new_event
from tests.support.specs import find_specs

SPECS = find_specs()
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


#: The accounts the tokens of `tokens_for` name: a token counts only for an existing account.
ACCOUNTS = {"adapter": ["api"], "boss": ["admin", "api"], "alice": ["user"]}


def add_accounts(services: Any, accounts: dict[str, list[str]] | None = None) -> None:
    """Create the accounts (as `ccstream add-user` would: events in the log) and wait until they count."""
    events = [
        new_event("user.created", f"users/{name}", {"username": name, "roles": roles, "projects": []},
                  id=f"test-account-{name}", source="test")
        for name, roles in (ACCOUNTS if accounts is None else accounts).items()
    ]
    services.log.append(events)
    assert services.runner.wait_for(services.log.head(), timeout=60)


def tokens_for(public: str, private: str) -> Tokens:
    """Tokens of the three kinds of callers, signed with `private`."""
    return Tokens(
        api=sign(private, claims("adapter", ["api"])),
        admin=sign(private, claims("boss", ["admin", "api"])),
        user=sign(private, claims("alice", ["user"])),
        private_key=private,
        public_key=public,
    )


@pytest.fixture
def tokens(keys: tuple[str, str]) -> Tokens:
    return tokens_for(*keys)


def make_archive(root: Path) -> Path:
    """A job archive root with the reference cluster.json files of fritz and alex."""
    for name in CLUSTERS:
        (root / name).mkdir(parents=True)
        shutil.copy(SPECS / "archive" / name / "cluster.json", root / name / "cluster.json")
    (root / "version.txt").write_text("3\n")
    return root


@pytest.fixture
def archive_root(tmp_path: Path) -> Path:
    return make_archive(tmp_path / "job-archive")


class BackgroundCloser:
    """Closes apps off the test's critical path: stopping the agent runner waits out its log poll
    (up to 0.5 s), which would otherwise dominate the suite's run time. Every close is awaited, and
    its error raised, at the end of the session."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="close-app")
        self._pending: list[Future[None]] = []

    def close(self, client: TestClient) -> None:
        self._pending.append(self._pool.submit(client.__exit__, None, None, None))

    def wait(self) -> None:
        self._pool.shutdown(wait=True)
        for future in self._pending:
            future.result()


@pytest.fixture(scope="session")
def closer() -> Iterator[BackgroundCloser]:
    background = BackgroundCloser()
    yield background
    background.wait()


class AppFactory:
    """Builds and starts apps over the test's files; `close` stops one now (e.g. to restart on the same
    files), every other one is closed at teardown."""

    def __init__(self, tmp_path: Path, archive_root: Path, closer: BackgroundCloser) -> None:
        self._tmp_path = tmp_path
        self._archive_root = archive_root
        self._closer = closer
        self._open: list[TestClient] = []

    def __call__(
        self, config: dict[str, Any] | None = None, *, client_addr: tuple[str, int] = ("testclient", 50000),
        dev: bool = False, prepare: Callable[[FastAPI], None] | None = None,
    ) -> TestClient:
        """An app from config.json-shaped overrides (deep-merged over the defaults); `client_addr` is the
        peer address the app sees (TestClient's default host is "testclient"); `dev` as `serve --dev`;
        `prepare` is called with the app before it starts."""
        base = {
            "main": {"db": str(self._tmp_path / "job.db")},
            "archive": {"kind": "file", "path": str(self._archive_root)},
            "event-log": {"kind": "sqlite", "path": str(self._tmp_path / "events.db")},
            "metric-store": {"checkpoints": {"directory": str(self._tmp_path / "checkpoints")},
                             "cleanup": {"mode": "delete", "directory": str(self._tmp_path / "metrics-archive")}},
            "archiver": {"state-path": str(self._tmp_path / "agents.db")},
        }
        settings = Settings.model_validate(_deep_merge(base, config or {}))
        app = create_app(build_services(settings), dev=dev)
        if prepare is not None:  # e.g. add a middleware: only possible before the app first serves
            prepare(app)
        client = TestClient(app, client=client_addr)
        client.__enter__()
        self._open.append(client)
        add_accounts(client.app.state.services)  # type: ignore[attr-defined]
        return client

    def close(self, client: TestClient) -> None:
        """Shut an app down now: its files are released when this returns."""
        self._open.remove(client)
        client.__exit__(None, None, None)

    def close_all(self) -> None:
        for client in reversed(self._open):
            self._closer.close(client)
        self._open.clear()


@pytest.fixture
def make_client(tmp_path: Path, archive_root: Path, tokens: Tokens, closer: BackgroundCloser) -> Iterator[AppFactory]:
    """The app factory of this test (keys and tokens are in the environment already)."""
    factory = AppFactory(tmp_path, archive_root, closer)
    yield factory
    factory.close_all()


@pytest.fixture
def client(make_client: AppFactory, tokens: Tokens) -> tuple[TestClient, Tokens]:
    """A started app with default settings, and tokens for it."""
    return make_client(), tokens


@contextmanager
def module_app(tmp_path_factory: pytest.TempPathFactory, closer: BackgroundCloser) -> Iterator[
        tuple[TestClient, Tokens]]:
    """An app with keys of its own, for the tests of a module that share it (see `shared_client`)."""
    with pytest.MonkeyPatch.context() as patch:
        public, private = generate_keypair()
        patch.setenv("JWT_PUBLIC_KEY", public)
        patch.setenv("JWT_PRIVATE_KEY", private)
        tmp = tmp_path_factory.mktemp("shared-app")
        factory = AppFactory(tmp, make_archive(tmp / "job-archive"), closer)
        yield factory(), tokens_for(public, private)
        factory.close_all()


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory, closer: BackgroundCloser) -> Iterator[
        tuple[TestClient, Tokens]]:
    """One empty app per module, for tests that write nothing: refused requests, authentication.

    Starting an app per test is what makes this suite slow; requests that are refused leave the app
    as it was. Tests that write use `client`.
    """
    with module_app(tmp_path_factory, closer) as app:
        yield app


JobPayload = Callable[..., dict[str, Any]]


def job_body(**overrides: Any) -> dict[str, Any]:
    """A start_job body on fritz (host f0101, subcluster main), with any field overridden."""
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


@pytest.fixture
def job_payload() -> JobPayload:
    """The `job_body` factory."""
    return job_body


def start_job(http: TestClient, tok: Tokens, **overrides: Any) -> int:
    """Start a job through the API (asserting 201); its database id."""
    response = http.post("/api/jobs/start_job/", json=job_body(**overrides), headers=tok.headers())
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


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
def start(client: tuple[TestClient, Tokens]) -> Callable[..., int]:
    """Start a job through the API with overrides; returns its database id."""
    http, tok = client

    def do(**overrides: Any) -> int:
        return start_job(http, tok, **overrides)

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
