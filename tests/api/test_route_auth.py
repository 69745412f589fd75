"""Authentication and authorisation on every REST route, found by walking the app's routes.

A route added later is covered automatically. Routes under /api/admin/, /api/users/ and /api/user/
are for admins, every other one for the `api` role; a route that breaks that rule fails the test of
the right roles until `is_admin` knows about it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import orjson
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.keys import generate_keypair
from tests.api.conftest import Tokens, add_accounts, assert_error, claims, sign

UNAUTHENTICATED = {"/healthz"}
ADMIN_PREFIXES = ("/api/admin/", "/api/users/", "/api/user/")
KNOWN_ADMIN_ROUTES = {"/api/users/", "/api/user/{username}", "/api/admin/status", "/api/admin/parked-stops"}
#: Routes for every signed-in account, whatever its roles: what each sees is decided inside (GraphQL).
SIGNED_IN_ROUTES = {"/query"}
PATH_VALUES = {"username": "nobody"}  # every other path parameter gets "1"

Endpoint = tuple[str, str, str]  # method, concrete path, route template


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, set(route.methods)
        elif (included := getattr(route, "original_router", None)) is not None:
            # Newer FastAPI keeps included routers as branches instead of copying their routes.
            yield from _walk(included.routes, prefix + getattr(route.include_context, "prefix", ""))
        elif isinstance(getattr(route, "routes", None), list):
            yield from _walk(route.routes, prefix + getattr(route, "path", ""))


def endpoints(http: TestClient) -> list[Endpoint]:
    """Every (method, path) the app serves behind authentication."""
    found = []
    for template, methods in _walk(http.app.routes):  # type: ignore[attr-defined]
        if template in UNAUTHENTICATED:
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), template)
        found.extend((method, path, template) for method in sorted(methods))
    return found


def check_all(http: TestClient, headers: dict[str, str], expected: Callable[[str], int | None],
              fragment: str = "") -> None:
    """Call every endpoint; each must answer `expected(template)` in cc-backend's error shape."""
    failures = []
    for method, path, template in endpoints(http):
        status = expected(template)
        if status is None:
            continue
        response = http.request(method, path, headers=headers)
        try:
            assert_error(response, status, fragment)
        except AssertionError:
            failures.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)


def is_admin(template: str) -> bool:
    return template.startswith(ADMIN_PREFIXES)


def everywhere(status: int) -> Callable[[str], int]:
    return lambda _template: status


def b64url(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()


def test_the_walk_finds_every_route_family(shared_client) -> None:
    http, _ = shared_client
    templates = {template for _, _, template in endpoints(http)}
    assert {"/api/jobs/start_job/", "/api/jobs/stop_job/", "/api/jobs/", "/api/jobs/{db_id}", "/api/clusters/",
            "/api/jobs/tag_job/{db_id}", "/api/tags/", "/api/jobs/delete_job_before/{ts}"} <= templates
    assert templates >= KNOWN_ADMIN_ROUTES, "an admin route listed here no longer exists"
    # Cross-check with the public OpenAPI description: the walk misses nothing it documents.
    documented = {(m.upper(), p) for p, ops in http.app.openapi()["paths"].items() for m in ops}  # type: ignore[attr-defined]
    assert documented <= {(method, template) for method, _, template in endpoints(http)}
    assert len(endpoints(http)) >= 25


def test_healthz_needs_no_token(shared_client) -> None:
    http, _ = shared_client
    assert http.get("/healthz").json() == {"status": "ok"}


def test_no_token_is_unauthorized_everywhere(shared_client) -> None:
    http, _ = shared_client
    check_all(http, {}, everywhere(401), "missing")


def test_expired_token_is_unauthorized_everywhere(shared_client) -> None:
    http, tok = shared_client
    expired = sign(tok.private_key, claims("boss", ["admin", "api"], exp_in=-10))
    check_all(http, {"X-Auth-Token": expired}, everywhere(401), "expired")


def test_token_signed_with_another_key_is_unauthorized_everywhere(shared_client) -> None:
    http, _ = shared_client
    _, foreign_private = generate_keypair()
    forged = sign(foreign_private, claims("boss", ["admin", "api"]))
    check_all(http, {"X-Auth-Token": forged}, everywhere(401), "signature")


def test_unsigned_alg_none_token_is_unauthorized_everywhere(shared_client) -> None:
    http, _ = shared_client
    unsigned = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims('boss', ['admin', 'api']))}."
    check_all(http, {"X-Auth-Token": unsigned}, everywhere(401), "algorithm")


def test_hs256_token_keyed_with_the_public_key_is_unauthorized_everywhere(shared_client) -> None:
    http, tok = shared_client
    # Key confusion: an HMAC "signature" made with the (public) verification key.
    confused = jwt.encode(claims("boss", ["admin", "api"]), tok.public_key, algorithm="HS256")
    check_all(http, {"Authorization": f"Bearer {confused}"}, everywhere(401), "algorithm")


@pytest.mark.parametrize("headers", [
    {"X-Auth-Token": "not-a-jwt"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic YWRtaW46YWRtaW4="},
])
def test_malformed_credentials_are_unauthorized_everywhere(shared_client, headers) -> None:
    http, _ = shared_client
    check_all(http, headers, everywhere(401))


def test_user_only_token_is_forbidden_everywhere(shared_client) -> None:
    http, tok = shared_client
    check_all(http, tok.headers("user"), lambda t: None if t in SIGNED_IN_ROUTES else 403, "lacks role")


def test_any_signed_in_account_passes_authentication_on_the_graphql_endpoint(shared_client) -> None:
    http, tok = shared_client
    for who in ("user", "api", "admin"):
        response = http.post("/query", json={"query": "{ tags { id } }"}, headers=tok.headers(who))
        assert response.status_code == 200 and response.json() == {"data": {"tags": []}}, response.text


def test_api_only_token_is_forbidden_on_admin_routes(shared_client) -> None:
    http, tok = shared_client
    check_all(http, tok.headers("api"), lambda t: 403 if is_admin(t) else None, "admin")


def test_admin_only_token_is_forbidden_on_api_routes(shared_client) -> None:
    http, tok = shared_client
    admin_only = sign(tok.private_key, claims("boss", ["admin"]))  # the account has api too: the token does not
    check_all(http, {"X-Auth-Token": admin_only},
              lambda t: None if is_admin(t) or t in SIGNED_IN_ROUTES else 403, "api")


@pytest.mark.parametrize("who", ["api", "admin"])
def test_the_right_role_passes_authentication_everywhere(shared_client, who) -> None:
    http, tok = shared_client
    failures = []
    for method, path, template in endpoints(http):
        if who == "api" and is_admin(template):
            continue
        response = http.request(method, path, headers=tok.headers(who))
        if response.status_code in (401, 403):
            failures.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)


def test_ip_outside_the_allow_list_is_forbidden_everywhere(make_client, tokens: Tokens) -> None:
    http = make_client({"main": {"api-allowed-ips": ["10.0.0.1"]}})
    check_all(http, tokens.headers("admin"), everywhere(403), "testclient")


def test_ip_in_the_allow_list_passes(make_client, tokens: Tokens) -> None:
    allowed = make_client({"main": {"api-allowed-ips": ["10.0.0.1", "192.168.0.0/16"]}}, client_addr=("10.0.0.1", 1))
    assert allowed.get("/api/jobs/", headers=tokens.headers()).status_code == 200
    assert allowed.get("/api/users/", headers=tokens.headers("admin")).status_code == 200


def test_ip_in_an_allowed_network_passes_and_a_neighbour_is_refused(make_client, tokens: Tokens) -> None:
    inside = make_client({"main": {"api-allowed-ips": ["192.168.0.0/16"]}}, client_addr=("192.168.7.9", 1))
    assert inside.get("/api/jobs/", headers=tokens.headers()).status_code == 200
    outside = make_client({"main": {"api-allowed-ips": ["192.168.0.0/16"]}}, client_addr=("192.169.0.1", 1))
    assert_error(outside.get("/api/jobs/", headers=tokens.headers()), 403, "192.169.0.1")


def test_ip_check_comes_before_the_token(make_client) -> None:
    http = make_client({"main": {"api-allowed-ips": ["10.0.0.1"]}})
    assert_error(http.get("/api/jobs/"), 403, "not allowed")


@pytest.mark.parametrize("style", ["X-Auth-Token", "Bearer", "bearer"])
def test_both_token_headers_are_accepted(shared_client, style) -> None:
    http, tok = shared_client
    def headers(who: str) -> dict[str, str]:
        token = getattr(tok, who)
        return {"X-Auth-Token": token} if style == "X-Auth-Token" else {"Authorization": f"{style} {token}"}

    assert http.get("/api/jobs/", headers=headers("api")).status_code == 200
    assert http.get("/api/users/", headers=headers("admin")).status_code == 200


def test_x_auth_token_wins_over_authorization(shared_client) -> None:
    http, tok = shared_client
    both = {"X-Auth-Token": tok.api, "Authorization": f"Bearer {tok.user}"}
    assert http.get("/api/jobs/", headers=both).status_code == 200


def test_token_without_expiry_is_refused(shared_client) -> None:
    # cc-backend issues tokens without exp when auth.jwts.max-age is unset: valid for ever, refused here.
    http, tok = shared_client
    forever = sign(tok.private_key, {"sub": "adapter", "roles": ["api"]})
    assert_error(http.get("/api/jobs/", headers={"X-Auth-Token": forever}), 401, "no expiry", "ccstream jwt")


def test_token_with_api_and_user_roles_is_admitted_to_job_routes(shared_client) -> None:
    http, tok = shared_client
    add_accounts(http.app.state.services, {"svc": ["api", "user"]})
    mixed = sign(tok.private_key, claims("svc", ["api", "user"]))
    assert http.get("/api/jobs/", headers={"X-Auth-Token": mixed}).status_code == 200
    assert_error(http.get("/api/users/", headers={"X-Auth-Token": mixed}), 403)


def test_authentication_can_be_disabled(make_client, monkeypatch) -> None:
    monkeypatch.delenv("JWT_PUBLIC_KEY")
    monkeypatch.delenv("JWT_PRIVATE_KEY")
    http = make_client({"main": {"disable-authentication": True}})
    assert http.get("/api/jobs/").status_code == 200
    assert http.get("/api/users/").status_code == 200


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/api/nope", 404), ("GET", "/api/jobs/start_job/", 405),
                                                        ("DELETE", "/api/clusters/", 405)])
def test_unknown_paths_and_methods_answer_in_the_error_shape(shared_client, method, path, status) -> None:
    http, tok = shared_client
    assert_error(http.request(method, path, headers=tok.headers()), status)


def test_deleting_an_account_or_removing_a_role_takes_effect_at_the_next_request(client) -> None:
    http, tok = client
    add_accounts(http.app.state.services, {"carol": ["api"], "dave": ["api", "user"]})
    carol = {"X-Auth-Token": sign(tok.private_key, claims("carol", ["api"]))}
    dave = {"X-Auth-Token": sign(tok.private_key, claims("dave", ["api", "user"]))}
    assert http.get("/api/jobs/", headers=carol).status_code == 200
    deleted = http.request("DELETE", "/api/users/", data={"username": "carol"}, headers=tok.headers("admin"))
    assert deleted.status_code == 200
    assert_error(http.get("/api/jobs/", headers=carol), 401, "unknown user carol")
    assert http.get("/api/jobs/", headers=dave).status_code == 200
    assert http.post("/api/user/dave", data={"remove-role": "api"}, headers=tok.headers("admin")).status_code == 200
    assert_error(http.get("/api/jobs/", headers=dave), 403, "lacks role api")
