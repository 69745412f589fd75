"""JWT issue/verify with real Ed25519 keys, Go durations and the IP allow-list."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from api.auth import (
    ALL_ROLES,
    JWTAuthenticator,
    Principal,
    Role,
    ip_allowed,
    parse_allowed_ips,
    parse_go_duration,
)
from api.errors import ApiError
from api.keys import generate_keypair, load_private_key

# A key pair and two tokens made by Go exactly as cc-backend makes them (crypto/ed25519 from the
# RFC 8032 test-1 seed, golang-jwt/jwt/v5 SigningMethodEdDSA with MapClaims). The second has no exp:
# cc-backend omits it when auth.jwts.max-age is unset.
GO_PUBLIC_B64 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
GO_PRIVATE_B64 = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGg=="
GO_TOKEN = (
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJleHAiOjQxMDI0NDQ4MDAsImlhdCI6MTcwMDAwMDAwMCwicm9sZXMiOlsiYXBp"
    "Il0sInN1YiI6ImFkYXB0ZXIifQ.CfktEct9AP6TEP8_Z5AIhL1swsyLFquul0K8pMj2K-zPGKao0YgMe2QEZLGPuseZhgIGu1UnMBT"
    "kAbbwepbPDw"
)
GO_TOKEN_NO_EXP = (
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3MDAwMDAwMDAsInJvbGVzIjpbImFwaSJdLCJzdWIiOiJhZGFwdGVyIn0"
    ".DhjGVd229m6PF4UjQRgGD83EwP88x92TQAvRM18ApmtV4I0cGESRPmHBizuRi5rJqn9Ju1hhCJgoCp3loUUIAg"
)


def make_authenticator(max_age: timedelta = timedelta(hours=1), **kwargs: Any) -> JWTAuthenticator:
    public, private = generate_keypair()
    return JWTAuthenticator(public, private, max_age, **kwargs)


def segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def json_segment(value: object) -> str:
    return segment(json.dumps(value).encode())


def signed_by_hand(header: dict[str, Any], payload: bytes, private_b64: str = GO_PRIVATE_B64) -> str:
    """A correctly EdDSA-signed token around any payload bytes, to reach the checks after the signature."""
    signing_input = f"{json_segment(header)}.{segment(payload)}"
    signature = load_private_key(private_b64).sign(signing_input.encode())
    return f"{signing_input}.{segment(signature)}"


def go_signed_claims(claims: dict[str, Any]) -> str:
    return signed_by_hand({"alg": "EdDSA", "typ": "JWT"}, json.dumps(claims).encode())


def go_authenticator(**kwargs: Any) -> JWTAuthenticator:
    return JWTAuthenticator(GO_PUBLIC_B64, GO_PRIVATE_B64, timedelta(hours=1), **kwargs)


def refusal(authenticator: JWTAuthenticator, token: str) -> str:
    with pytest.raises(ApiError) as info:
        authenticator.verify(token)
    assert info.value.status == 401
    return info.value.message


# ---------------------------------------------------------------- issue / verify


def test_issued_token_verifies_to_its_principal() -> None:
    auth = make_authenticator()
    token = auth.issue("alice", ["api", "user"], ["proj1", "proj2"])
    assert auth.verify(token) == Principal("alice", frozenset({"api", "user"}), ("proj1", "proj2"))


def test_issued_claims_are_cc_backends() -> None:
    now = 1_700_000_000.0
    auth = make_authenticator(timedelta(hours=2000), clock=lambda: now)
    token = auth.issue("alice", [Role.API])
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    claims = jwt.decode(token, options={"verify_signature": False})
    expires = 1_700_000_000 + 2000 * 3600
    assert claims == {"sub": "alice", "roles": ["api"], "projects": [], "iat": 1_700_000_000, "exp": expires}


def test_token_made_by_go_verifies() -> None:
    assert go_authenticator().verify(GO_TOKEN) == Principal("adapter", frozenset({"api"}))


def test_go_token_without_exp_is_refused_unlike_cc_backend() -> None:
    assert refusal(go_authenticator(), GO_TOKEN_NO_EXP).startswith("token has no expiry (claim exp)")


def test_verifying_needs_only_the_public_key() -> None:
    token = go_authenticator().issue("bob", ["user"])
    assert JWTAuthenticator(GO_PUBLIC_B64, None, timedelta(hours=1)).verify(token).username == "bob"


def test_issuing_without_private_key_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="JWT_PRIVATE_KEY is not set"):
        JWTAuthenticator(GO_PUBLIC_B64, None, timedelta(hours=1)).issue("bob", ["user"])


def test_mismatched_key_pair_is_refused_at_start_up() -> None:
    other_public, _ = generate_keypair()
    with pytest.raises(ValueError, match="is not JWT_PUBLIC_KEY's pair"):
        JWTAuthenticator(other_public, GO_PRIVATE_B64, timedelta(hours=1))


def test_issuing_unknown_roles_or_no_username_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown roles \['root'\]"):
        go_authenticator().issue("bob", ["user", "root"])
    with pytest.raises(ValueError, match="empty username"):
        go_authenticator().issue("", ["user"])


def test_roles_enum_is_cc_backends() -> None:
    assert sorted(ALL_ROLES) == ["admin", "anonymous", "api", "manager", "support", "user"]
    assert Principal("x", frozenset({"admin"})).has_role(Role.ADMIN)


# ---------------------------------------------------------------- time


def test_token_issued_with_negative_max_age_is_expired() -> None:
    auth = make_authenticator(timedelta(seconds=-1))
    assert refusal(auth, auth.issue("alice", ["api"])) == "token is expired"


def test_token_expires_on_the_faked_clock() -> None:
    now = [1_700_000_000.0]
    auth = make_authenticator(timedelta(minutes=30), clock=lambda: now[0])
    token = auth.issue("alice", ["api"])
    now[0] += 30 * 60 - 1
    assert auth.verify(token).username == "alice"
    now[0] += 1
    assert refusal(auth, token) == "token is expired"


def test_expired_claims_built_by_hand() -> None:
    token = go_signed_claims({"sub": "alice", "roles": ["api"], "exp": int(time.time()) - 5})
    assert refusal(go_authenticator(), token) == "token is expired"


def test_not_before_in_the_future_is_refused() -> None:
    token = go_signed_claims({"sub": "alice", "nbf": int(time.time()) + 600, "exp": int(time.time()) + 3600})
    assert refusal(go_authenticator(), token) == "token is not valid yet"


@pytest.mark.parametrize("exp", ["4102444800", True, [1]])
def test_non_numeric_exp_is_refused(exp: object) -> None:
    token = go_signed_claims({"sub": "alice", "exp": exp})
    assert refusal(go_authenticator(), token) == "token claim exp must be a number of seconds since the epoch"


# ---------------------------------------------------------------- refused tokens


def test_token_signed_by_another_key_is_refused() -> None:
    token = make_authenticator().issue("mallory", ["admin"])
    assert refusal(go_authenticator(), token) == "token signature is invalid"


def test_tampered_payload_is_refused() -> None:
    header, _, signature = GO_TOKEN.split(".")
    payload = json_segment({"exp": 4102444800, "iat": 1700000000, "roles": ["admin"], "sub": "adapter"})
    assert refusal(go_authenticator(), f"{header}.{payload}.{signature}") == "token signature is invalid"


def test_alg_none_is_refused() -> None:
    token = f"{json_segment({'alg': 'none', 'typ': 'JWT'})}.{json_segment({'sub': 'mallory', 'roles': ['admin']})}."
    message = refusal(go_authenticator(), token)
    assert message == "token algorithm 'none' is not accepted: only EdDSA (Ed25519) tokens are"


@pytest.mark.parametrize("secret", [base64.b64decode(GO_PUBLIC_B64), GO_PUBLIC_B64.encode()])
def test_hs256_signed_with_the_public_key_is_refused(secret: bytes) -> None:
    """The classic key confusion: a verifier that lets the token pick HMAC would use the public key as secret."""
    signing_input = f"{json_segment({'alg': 'HS256', 'typ': 'JWT'})}.{json_segment({'sub': 'mallory'})}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    message = refusal(go_authenticator(), f"{signing_input}.{segment(mac)}")
    assert message == "token algorithm 'HS256' is not accepted: only EdDSA (Ed25519) tokens are"


def test_rs256_token_is_refused() -> None:
    rsa = generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"sub": "mallory"}, rsa, algorithm="RS256")
    assert "token algorithm 'RS256' is not accepted" in refusal(go_authenticator(), token)


@pytest.mark.parametrize("alg", ["eddsa", "Ed25519", "ES256", "HS512", None])
def test_every_other_alg_is_refused(alg: str | None) -> None:
    header = {"typ": "JWT"} if alg is None else {"alg": alg}
    token = signed_by_hand(header, b'{"sub": "mallory"}')
    assert f"token algorithm {alg!r} is not accepted" in refusal(go_authenticator(), token)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "malformed token: Not enough segments"),
        ("garbage", "malformed token: Not enough segments"),
        ("abc.def", "malformed token: Not enough segments"),
        ("!!!.e30.e30", "malformed token: Invalid header padding"),
        (f"{segment(b'not json')}.e30.", "malformed token: Invalid header string"),
    ],
)
def test_malformed_tokens_are_refused(token: str, message: str) -> None:
    assert refusal(go_authenticator(), token).startswith(message)


def test_signed_non_json_payload_is_malformed() -> None:
    token = signed_by_hand({"alg": "EdDSA"}, b"not json at all")
    assert refusal(go_authenticator(), token).startswith("malformed token: Invalid payload string")


def test_signed_non_object_payload_is_malformed() -> None:
    token = signed_by_hand({"alg": "EdDSA"}, b'["sub", "alice"]')
    assert refusal(go_authenticator(), token) == "malformed token: Invalid payload string: must be a json object"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"roles": ["api"]}, "token has no sub claim"),
        ({"sub": ""}, "token claim sub must be a non-empty string"),
        ({"sub": None}, "token claim sub must be a non-empty string"),
        ({"sub": "alice", "roles": "admin"}, "token claim roles must be a list of strings"),
        ({"sub": "alice", "roles": ["api", 1]}, "token claim roles must be a list of strings"),
        ({"sub": "alice", "roles": {"admin": True}}, "token claim roles must be a list of strings"),
        ({"sub": "alice", "projects": "p1"}, "token claim projects must be a list of strings"),
    ],
)
def test_bad_claims_are_refused(claims: dict[str, Any], message: str) -> None:
    assert refusal(go_authenticator(), go_signed_claims(claims)).endswith(message)


def test_absent_roles_mean_no_roles() -> None:
    token = go_signed_claims({"sub": "alice", "exp": int(time.time()) + 3600})
    assert go_authenticator().verify(token).roles == frozenset()


# ---------------------------------------------------------------- validateUser


def test_validate_user_replaces_token_roles_with_the_databases() -> None:
    users = {"alice": Principal("alice", frozenset({"user"}), ("proj9",))}
    auth = go_authenticator(user_lookup=users.get, validate_user=True)
    assert auth.verify(auth.issue("alice", ["admin", "api"])) == users["alice"]


def test_a_token_counts_only_with_the_roles_the_account_still_has() -> None:
    users = {"alice": Principal("alice", frozenset({"api", "user"}))}
    auth = go_authenticator(user_lookup=users.get)
    token = auth.issue("alice", ["admin", "api"])
    assert auth.verify(token).roles == frozenset({"api"}), "admin was never the account's: it does not count"
    users["alice"] = Principal("alice", frozenset({"user"}))
    assert auth.verify(token).roles == frozenset(), "a role removed from the account is gone at once"
    del users["alice"]
    assert refusal(auth, token).startswith("unknown user alice"), "a deleted account's token is refused at once"


def test_user_lookup_refuses_unknown_users() -> None:
    auth = go_authenticator(user_lookup=lambda _name: None)
    assert refusal(auth, auth.issue("ghost", ["api"])).startswith("unknown user ghost")


# ---------------------------------------------------------------- Go durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2000h", timedelta(hours=2000)),
        ("168h", timedelta(hours=168)),
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("1h0m0s", timedelta(hours=1)),
        ("1.5h", timedelta(minutes=90)),
        (".5s", timedelta(milliseconds=500)),
        ("1.s", timedelta(seconds=1)),
        ("300ms", timedelta(milliseconds=300)),
        ("2us", timedelta(microseconds=2)),
        ("2µs", timedelta(microseconds=2)),
        ("2μs", timedelta(microseconds=2)),
        ("1500ns", timedelta(microseconds=1)),
        ("-1h30m", -timedelta(hours=1, minutes=30)),
        ("+5s", timedelta(seconds=5)),
        ("0", timedelta(0)),
        ("-0", timedelta(0)),
        ("0.000001s", timedelta(microseconds=1)),
    ],
)
def test_go_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'invalid duration ""'),
        ("-", 'invalid duration "-"'),
        (".h", 'invalid duration ".h"'),
        ("h", 'invalid duration "h"'),
        ("10", 'missing unit in duration "10"'),
        ("1.5.h", 'missing unit in duration "1.5.h"'),
        ("1d", 'unknown unit "d" in duration "1d"'),
        ("1e3s", 'unknown unit "e" in duration "1e3s"'),
        ("1h ", 'unknown unit "h " in duration "1h "'),
        (" 1h", 'invalid duration " 1h"'),
        ("1H", 'unknown unit "H"'),
        ("3000000h", "longer than Go's limit"),
    ],
)
def test_bad_go_durations_are_refused_precisely(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_go_duration(text)
    assert message in str(info.value)


# ---------------------------------------------------------------- IP allow-list


@pytest.mark.parametrize(
    ("client", "allowed", "expected"),
    [
        ("10.0.0.5", ["*"], True),
        ("garbage", ["*"], True),
        ("10.0.0.5", ["10.0.0.5"], True),
        ("10.0.0.6", ["10.0.0.5"], False),
        ("10.0.0.5", [], False),
        ("10.0.0.5", ["192.168.0.1", "10.0.0.0/8"], True),
        ("11.0.0.5", ["10.0.0.0/8"], False),
        ("10.1.2.3", ["10.1.9.9/16"], True),
        ("::1", ["::1"], True),
        ("::1", ["127.0.0.1"], False),
        ("2001:db8::42", ["2001:db8::/32"], True),
        ("2001:db9::42", ["2001:db8::/32"], False),
        ("2001:DB8:0:0::42", ["2001:db8::42"], True),
        ("::ffff:10.0.0.5", ["10.0.0.5"], True),
        ("::ffff:10.0.0.5", ["10.0.0.0/24"], True),
        ("10.0.0.5", ["::ffff:10.0.0.5"], True),
        ("10.0.0.5", ["::ffff:10.0.0.0/120"], True),
        ("fe80::1%eth0", ["fe80::/10"], True),
        ("[::1]", ["::1"], True),
        ("testclient", ["10.0.0.0/8"], False),
        ("", ["10.0.0.0/8"], False),
    ],
)
def test_ip_allow_list(client: str, allowed: list[str], expected: bool) -> None:
    assert ip_allowed(client, allowed) is expected


@pytest.mark.parametrize("entry", ["10.0.0.300", "localhost", "10.0.0.0/33", ""])
def test_bad_allow_list_entries_are_refused_at_start_up(entry: str) -> None:
    with pytest.raises(ValueError, match=f"invalid entry {entry!r} in apiAllowedIPs"):
        parse_allowed_ips(["10.0.0.1", entry])


def test_star_anywhere_allows_everyone() -> None:
    assert parse_allowed_ips(["10.0.0.1", "*"]) is None


def test_issued_tokens_expire_after_max_age_or_the_default() -> None:
    from api.bootstrap import token_lifetime
    from api.config import Settings

    assert token_lifetime(Settings()) == timedelta(hours=2000), "unset: cc-backend's example lifetime, not ten years"
    assert token_lifetime(Settings.model_validate({"auth": {"jwts": {"max-age": "0"}}})) == timedelta(hours=2000)
    assert token_lifetime(Settings.model_validate({"auth": {"jwts": {"max-age": "24h"}}})) == timedelta(hours=24)
    auth = go_authenticator()
    claims = jwt.decode(auth.issue("bob", ["api"], lifetime=timedelta(days=365)), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 365 * 86400
