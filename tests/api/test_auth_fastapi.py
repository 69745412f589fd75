"""The API gate end to end: a tiny FastAPI app, real tokens, cc-backend's error bodies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from api.auth import ApiAuth, JWTAuthenticator, Principal
from api.errors import install_error_handlers
from api.keys import generate_keypair

PUBLIC, PRIVATE = generate_keypair()
TOKENS = JWTAuthenticator(PUBLIC, PRIVATE, timedelta(hours=1))
CLIENT_IP = "10.0.0.5"


def make_app(auth: ApiAuth) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/api/jobs/")
    async def jobs(principal: Principal = Depends(auth.dependency("api"))) -> dict[str, Any]:
        return {"user": principal.username, "roles": sorted(principal.roles)}

    @app.get("/api/users/")
    async def users(request: Request, _: Principal = Depends(auth.dependency("admin"))) -> dict[str, Any]:
        return {"user": request.state.principal.username}

    return app


def make_client(
    allowed_ips: tuple[str, ...] = ("*",),
    disabled: bool = False,
    authenticator: JWTAuthenticator | None = TOKENS,
    client_ip: str = CLIENT_IP,
) -> TestClient:
    auth = ApiAuth(authenticator, allowed_ips, disabled)
    return TestClient(make_app(auth), client=(client_ip, 50000))


def bearer(username: str = "adapter", roles: tuple[str, ...] = ("api",)) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS.issue(username, roles)}"}


def assert_error(response: Any, status: int, phrase: str, message: str) -> None:
    assert (response.status_code, response.json()) == (status, {"status": phrase, "error": message})


# ---------------------------------------------------------------- 401


def test_no_token_is_401() -> None:
    response = make_client().get("/api/jobs/")
    assert_error(
        response, 401, "Unauthorized", "missing authentication token: send X-Auth-Token or Authorization: Bearer"
    )


def test_bad_token_is_401() -> None:
    response = make_client().get("/api/jobs/", headers={"X-Auth-Token": "garbage"})
    assert_error(response, 401, "Unauthorized", "malformed token: Not enough segments")


def test_token_from_another_key_is_401() -> None:
    other_public, other_private = generate_keypair()
    token = JWTAuthenticator(other_public, other_private, timedelta(hours=1)).issue("mallory", ["api", "admin"])
    response = make_client().get("/api/jobs/", headers={"X-Auth-Token": token})
    assert_error(response, 401, "Unauthorized", "token signature is invalid")


def test_expired_token_is_401() -> None:
    token = JWTAuthenticator(PUBLIC, PRIVATE, timedelta(seconds=-1)).issue("adapter", ["api"])
    response = make_client().get("/api/jobs/", headers={"X-Auth-Token": token})
    assert_error(response, 401, "Unauthorized", "token is expired")


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("Basic ZGVtbzpkZW1v", "unsupported Authorization scheme 'Basic': use Bearer"),
        ("Bearer ", "missing authentication token: the Bearer credentials are empty"),
        ("Bearer    ", "missing authentication token: the Bearer credentials are empty"),
        ("Bearer", "missing authentication token: the Bearer credentials are empty"),
    ],
)
def test_unusable_authorization_header_is_401(authorization: str, message: str) -> None:
    response = make_client().get("/api/jobs/", headers={"Authorization": authorization})
    assert_error(response, 401, "Unauthorized", message)


def test_token_auth_not_configured_is_401() -> None:
    response = make_client(authenticator=None).get("/api/jobs/", headers=bearer())
    assert_error(response, 401, "Unauthorized", "token authentication is not configured: JWT_PUBLIC_KEY is not set")


# ---------------------------------------------------------------- accepted


def test_bearer_header_is_accepted() -> None:
    response = make_client().get("/api/jobs/", headers=bearer())
    assert (response.status_code, response.json()) == (200, {"user": "adapter", "roles": ["api"]})


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    token = TOKENS.issue("adapter", ["api"])
    response = make_client().get("/api/jobs/", headers={"Authorization": f"{scheme} {token}"})
    assert response.status_code == 200


def test_x_auth_token_header_is_accepted() -> None:
    response = make_client().get("/api/jobs/", headers={"X-Auth-Token": TOKENS.issue("adapter", ["api"])})
    assert response.json()["user"] == "adapter"


def test_x_auth_token_wins_over_authorization_like_cc_backend() -> None:
    headers = {"X-Auth-Token": TOKENS.issue("first", ["api"]), **bearer("second")}
    assert make_client().get("/api/jobs/", headers=headers).json()["user"] == "first"


def test_principal_is_stored_on_request_state() -> None:
    response = make_client().get("/api/users/", headers=bearer("root", ("admin",)))
    assert (response.status_code, response.json()) == (200, {"user": "root"})


def test_api_plus_user_roles_pass_where_cc_backend_would_refuse() -> None:
    response = make_client().get("/api/jobs/", headers=bearer("alice", ("api", "user")))
    assert response.status_code == 200


# ---------------------------------------------------------------- 403


def test_wrong_role_is_403() -> None:
    response = make_client().get("/api/jobs/", headers=bearer("alice", ("user",)))
    assert_error(response, 403, "Forbidden", "user alice lacks role api")


def test_api_role_is_not_admin() -> None:
    response = make_client().get("/api/users/", headers=bearer("adapter", ("api",)))
    assert_error(response, 403, "Forbidden", "user adapter lacks role admin")


def test_ip_not_allowed_is_403() -> None:
    response = make_client(allowed_ips=("192.168.0.0/16",)).get("/api/jobs/", headers=bearer())
    assert_error(response, 403, "Forbidden", "IP address 10.0.0.5 is not allowed to use the API")


def test_ip_is_checked_before_the_token() -> None:
    response = make_client(allowed_ips=()).get("/api/jobs/")
    assert_error(response, 403, "Forbidden", "IP address 10.0.0.5 is not allowed to use the API")


def test_forwarded_headers_cannot_forge_an_allowed_ip() -> None:
    headers = {**bearer(), "X-Real-Ip": "192.168.1.1", "X-Forwarded-For": "192.168.1.1"}
    response = make_client(allowed_ips=("192.168.0.0/16",)).get("/api/jobs/", headers=headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("client_ip", "allowed"),
    [("10.0.0.5", ("10.0.0.0/8",)), ("::1", ("::1",)), ("::ffff:10.0.0.5", ("10.0.0.5",))],
)
def test_allowed_ips_pass(client_ip: str, allowed: tuple[str, ...]) -> None:
    client = make_client(allowed_ips=allowed, client_ip=client_ip)
    assert client.get("/api/jobs/", headers=bearer()).status_code == 200


# ---------------------------------------------------------------- validateUser


def test_database_roles_override_token_roles() -> None:
    demoted = {"alice": Principal("alice", frozenset({"user"}))}
    authenticator = JWTAuthenticator(PUBLIC, None, timedelta(hours=1), user_lookup=demoted.get)
    response = make_client(authenticator=authenticator).get("/api/jobs/", headers=bearer("alice", ("api",)))
    assert_error(response, 403, "Forbidden", "user alice lacks role api")


def test_unknown_database_user_is_401() -> None:
    authenticator = JWTAuthenticator(PUBLIC, None, timedelta(hours=1), user_lookup=lambda _name: None)
    response = make_client(authenticator=authenticator).get("/api/jobs/", headers=bearer("ghost"))
    assert_error(response, 401, "Unauthorized", "unknown user ghost: no such account (deleted?)")


# ---------------------------------------------------------------- disabled


def test_disabled_authentication_lets_everyone_in_as_anonymous() -> None:
    client = make_client(allowed_ips=(), disabled=True, authenticator=None)
    jobs = client.get("/api/jobs/")
    assert jobs.status_code == 200
    assert jobs.json()["user"] == "anonymous"
    assert set(jobs.json()["roles"]) >= {"api", "admin"}
    assert client.get("/api/users/", headers={"X-Auth-Token": "garbage"}).json() == {"user": "anonymous"}


def test_unknown_required_role_is_a_start_up_error() -> None:
    with pytest.raises(ValueError, match=r"unknown roles \['amdin'\]"):
        ApiAuth(TOKENS, ["*"], False).dependency("amdin")


def test_bad_allow_list_is_a_start_up_error() -> None:
    with pytest.raises(ValueError, match="invalid entry 'localhost' in apiAllowedIPs"):
        ApiAuth(TOKENS, ["localhost"], False)
