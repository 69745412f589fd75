"""REST API authentication as cc-backend does it: Ed25519 JWTs, an IP allow-list and roles."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from fractions import Fraction
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Request

from api.errors import Refusal
from api.keys import encode_public_key, load_private_key, load_public_key


class Role(StrEnum):
    """cc-backend's roles; members are plain strings, so they compare equal to the values in tokens."""

    ANONYMOUS = "anonymous"
    API = "api"
    USER = "user"
    MANAGER = "manager"
    SUPPORT = "support"
    ADMIN = "admin"


ALL_ROLES: frozenset[str] = frozenset(role.value for role in Role)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's (or the user table's) username, roles and projects."""

    username: str
    roles: frozenset[str]
    projects: tuple[str, ...] = ()

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def has_any_role(self, roles: Iterable[str]) -> bool:
        return any(role in self.roles for role in roles)


ANONYMOUS = Principal("anonymous", ALL_ROLES)
"""Everyone, when `disable-authentication` is set: cc-backend then lets every request through."""

class RefusalReason(StrEnum):
    """Why a request was refused, as counted by `/metrics` (`ccstream_http_requests_refused_total`)."""

    NO_TOKEN = "no_token"
    BAD_TOKEN = "bad_token"
    EXPIRED_TOKEN = "expired_token"
    UNKNOWN_USER = "unknown_user"
    WRONG_ROLE = "wrong_role"
    IP_NOT_ALLOWED = "ip_not_allowed"
    NOT_CONFIGURED = "auth_not_configured"


UserLookup = Callable[[str], Principal | None]
Clock = Callable[[], float]

# ---------------------------------------------------------------- Go durations (auth.jwts.max-age)

_NANOS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "μs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_MAX_NANOS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds


def parse_go_duration(text: str) -> timedelta:
    """Parse a Go `time.ParseDuration` string ("2000h", "1h30m", "1.5s", "-90s", "0") to a timedelta.

    cc-backend's config keeps durations in Go syntax, so we accept exactly Go's grammar; a bare number
    other than 0 is an error there ("missing unit"), and so it is here. Sub-microsecond parts are
    truncated, timedelta's resolution.
    """
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return timedelta(0)
    if not body:
        raise ValueError(f'invalid duration "{text}"')
    nanos = Fraction(0)
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        assert match is not None  # every group may be empty, so the pattern always matches
        nanos += _duration_part(text, *match.groups())
        pos = match.end()
    if nanos > _MAX_NANOS:
        raise ValueError(f'invalid duration "{text}": longer than Go\'s limit of about 292 years')
    micros = int(nanos / 1000)
    return timedelta(microseconds=-micros if text.startswith("-") else micros)


def _duration_part(text: str, whole: str, fraction: str | None, unit: str) -> Fraction:
    if not whole and not fraction:
        raise ValueError(f'invalid duration "{text}"')
    if not unit:
        raise ValueError(f'missing unit in duration "{text}" (units: ns, us, ms, s, m, h)')
    if unit not in _NANOS:
        raise ValueError(f'unknown unit "{unit}" in duration "{text}" (units: ns, us, ms, s, m, h)')
    value = Fraction(int(whole or "0"))
    if fraction:
        value += Fraction(int(fraction), 10 ** len(fraction))
    return value * _NANOS[unit]


# ---------------------------------------------------------------- IP allow-list (main.apiAllowedIPs)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AllowList = tuple[IPNetwork, ...] | None
"""Parsed allow-list; None means "*" (everyone)."""


def parse_allowed_ips(entries: Sequence[str]) -> AllowList:
    """Parse `apiAllowedIPs` once, at start-up, so a typo fails loudly instead of denying silently.

    Entries are exact addresses (cc-backend's only form) or CIDR networks (ours in addition). A
    network with host bits set ("10.1.2.3/16") means the network it lies in, as admins intend.
    """
    if "*" in entries:
        return None
    networks = []
    for entry in entries:
        try:
            networks.append(_unmap_network(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            raise ValueError(f"invalid entry {entry!r} in apiAllowedIPs: not an IP address or CIDR network") from None
    return tuple(networks)


def ip_allowed(client_ip: str, allowed: Sequence[str]) -> bool:
    """Whether `client_ip` may use the API. "*" allows all; an empty list allows nobody, as in cc-backend."""
    return ip_in_allow_list(client_ip, parse_allowed_ips(allowed))


def ip_in_allow_list(client_ip: str, allowed: AllowList) -> bool:
    """Membership against a parsed allow-list; an unparseable client address is never allowed."""
    if allowed is None:
        return True
    address = _parse_client_ip(client_ip)
    return address is not None and any(address in network for network in allowed)


def _parse_client_ip(client_ip: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(client_ip.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; the allow-list names them as IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _unmap_network(network: IPNetwork) -> IPNetwork:
    mapped = network.network_address.ipv4_mapped if isinstance(network, ipaddress.IPv6Network) else None
    if mapped is None or network.prefixlen < 96:
        return network
    return ipaddress.IPv4Network((mapped, network.prefixlen - 96))


# ---------------------------------------------------------------- JWT


_VERIFIED_CACHE_SIZE = 4096


class JWTAuthenticator:
    """Issues and verifies cc-backend's API tokens: EdDSA-signed, claims sub, roles, projects, iat, exp.

    `user_lookup` answers from the user table (the server passes its in-memory directory): a token's
    user must exist, and its roles count only while the account still has them, so deleting a user
    or removing a role takes effect at the next request, not when the token expires (cc-backend
    checks this only with `auth.jwts.validateUser`). With `validate_user` (that key) the account's
    roles replace the token's altogether. Every token must carry `exp`. The clock is injectable
    because it is the one thing tests fake.
    """

    def __init__(
        self,
        public_key_b64: str,
        private_key_b64: str | None,
        max_age: timedelta,
        *,
        user_lookup: UserLookup | None = None,
        validate_user: bool = False,
        clock: Clock = time.time,
    ) -> None:
        self._public_key = load_public_key(public_key_b64)
        self._private_key = load_private_key(private_key_b64) if private_key_b64 else None
        if self._private_key is not None and not _same_key(self._private_key, self._public_key):
            raise ValueError("JWT_PRIVATE_KEY is not JWT_PUBLIC_KEY's pair: issued tokens would not verify")
        self._max_age = max_age
        self._user_lookup = user_lookup
        self._validate_user = validate_user
        self._clock = clock
        # Adapters send the same token with every request; a signature check per request would be
        # the largest cost of a job event. Verified tokens are remembered until their `exp`.
        self._verified: dict[str, tuple[Principal, float | None]] = {}

    def issue(self, username: str, roles: Iterable[str], projects: Iterable[str] = (),
              lifetime: timedelta | None = None) -> str:
        """A signed token for `username`, valid for `lifetime` (default max_age) from now (negative: born expired)."""
        if self._private_key is None:
            raise RuntimeError("cannot issue tokens: JWT_PRIVATE_KEY is not set")
        if not username:
            raise ValueError("cannot issue a token for an empty username")
        role_list = sorted(set(roles))
        unknown = set(role_list) - ALL_ROLES
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; cc-backend's roles are {sorted(ALL_ROLES)}")
        now = int(self._clock())
        claims = {
            "sub": username,
            "roles": role_list,
            "projects": list(projects),
            "iat": now,
            "exp": now + int((self._max_age if lifetime is None else lifetime).total_seconds()),
        }
        return jwt.encode(claims, self._private_key, algorithm="EdDSA")

    def verify(self, token: str) -> Principal:
        """The principal a token stands for, or ApiError(401) saying precisely what is wrong with it."""
        cached = self._verified.get(token)
        if cached is not None and (cached[1] is None or self._clock() < cached[1]):
            return self._as_account_stands(cached[0])
        claims = self._decode(token)
        principal = self._token_principal(claims)
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, _numeric_date(claims, "exp"))
        return self._as_account_stands(principal)

    def _token_principal(self, claims: Mapping[str, Any]) -> Principal:
        username = _subject(claims)
        roles = _string_list(claims, "roles")
        projects = _string_list(claims, "projects")
        _check_validity_period(claims, self._clock())
        return Principal(username, frozenset(roles), tuple(projects))

    def _as_account_stands(self, principal: Principal) -> Principal:
        """The token's principal held to the user table as it is now (a dict lookup)."""
        if self._user_lookup is None:
            return principal
        known = self._user_lookup(principal.username)
        if known is None:
            raise Refusal(401, f"unknown user {principal.username}: no such account (deleted?)",
                          RefusalReason.UNKNOWN_USER)
        if self._validate_user:
            return known
        return Principal(principal.username, principal.roles & known.roles, principal.projects)

    def _decode(self, token: str) -> dict[str, Any]:
        _require_eddsa(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_key,
                algorithms=["EdDSA"],
                # Time claims and sub are checked below: our clock, our messages.
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_sub": False},
            )
        except jwt.InvalidSignatureError:
            raise Refusal(401, "token signature is invalid", RefusalReason.BAD_TOKEN) from None
        except jwt.DecodeError as exc:
            raise Refusal(401, f"malformed token: {exc}", RefusalReason.BAD_TOKEN) from None
        except jwt.InvalidTokenError as exc:
            raise Refusal(401, f"invalid token: {exc}", RefusalReason.BAD_TOKEN) from None
        return claims


def _same_key(private: Ed25519PrivateKey, public: Ed25519PublicKey) -> bool:
    return encode_public_key(private.public_key()) == encode_public_key(public)


def _require_eddsa(token: str) -> None:
    """Refuse every algorithm but EdDSA before touching the signature.

    PyJWT would refuse too; checking first gives a precise message, and pins the defence against
    `alg: none` and against HS256 tokens "signed" with our public key (key confusion) to one line.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise Refusal(401, f"malformed token: {exc}", RefusalReason.BAD_TOKEN) from None
    alg = header.get("alg")
    if alg != "EdDSA":
        raise Refusal(401, f"token algorithm {alg!r} is not accepted: only EdDSA (Ed25519) tokens are",
                      RefusalReason.BAD_TOKEN)


def _subject(claims: Mapping[str, Any]) -> str:
    if "sub" not in claims:
        raise Refusal(401, "token has no sub claim", RefusalReason.BAD_TOKEN)
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise Refusal(401, "token claim sub must be a non-empty string", RefusalReason.BAD_TOKEN)
    return sub


def _string_list(claims: Mapping[str, Any], name: str) -> list[str]:
    """A list-of-strings claim; absent means empty (cc-backend's own tokens may carry no projects)."""
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Refusal(401, f"token claim {name} must be a list of strings", RefusalReason.BAD_TOKEN)
    return value


def _check_validity_period(claims: Mapping[str, Any], now: float) -> None:
    """exp and nbf as golang-jwt checks them, without leeway; unlike cc-backend, exp is required.

    A token without an expiry (cc-backend issues such tokens when max-age is unset) would be valid for
    ever: refused, with what to do instead.
    """
    exp = _numeric_date(claims, "exp")
    if exp is None:
        raise Refusal(401, "token has no expiry (claim exp): issue a new one with `ccstream jwt USER`",
                      RefusalReason.BAD_TOKEN)
    if now >= exp:
        raise Refusal(401, "token is expired", RefusalReason.EXPIRED_TOKEN)
    nbf = _numeric_date(claims, "nbf")
    if nbf is not None and now < nbf:
        raise Refusal(401, "token is not valid yet", RefusalReason.BAD_TOKEN)


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refusal(401, f"token claim {name} must be a number of seconds since the epoch", RefusalReason.BAD_TOKEN)
    return float(value)


# ---------------------------------------------------------------- FastAPI


def token_from_headers(headers: Mapping[str, str]) -> str:
    """The raw token from `X-Auth-Token` or `Authorization: Bearer`, in cc-backend's order of preference."""
    token = headers.get("x-auth-token", "").strip()
    if token:
        return token
    authorization = headers.get("authorization", "").strip()
    if not authorization:
        raise Refusal(401, "missing authentication token: send X-Auth-Token or Authorization: Bearer",
                      RefusalReason.NO_TOKEN)
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise Refusal(401, f"unsupported Authorization scheme {scheme!r}: use Bearer", RefusalReason.BAD_TOKEN)
    if not credentials.strip():
        raise Refusal(401, "missing authentication token: the Bearer credentials are empty", RefusalReason.NO_TOKEN)
    return credentials.strip()


class ApiAuth:
    """The REST API's gate: IP allow-list, then token, then roles; or nothing when authentication is disabled.

    The IP is checked before the token so hosts outside the allow-list cannot even probe tokens.
    The client IP is the socket peer (`request.client`), never X-Forwarded-For or X-Real-Ip as
    cc-backend reads them: those headers are forgeable by any client. Behind a reverse proxy, run
    `ccstream serve --forwarded-allow-ips=<proxy>`, which rewrites the peer only for requests that
    really come from the proxy.
    """

    def __init__(self, authenticator: JWTAuthenticator | None, allowed_ips: Sequence[str], disabled: bool) -> None:
        self._authenticator = authenticator
        self._allowed = parse_allowed_ips(allowed_ips)
        self._disabled = disabled

    def dependency(self, *required_any_roles: str) -> Callable[[Request], Awaitable[Principal]]:
        """A FastAPI dependency admitting callers with at least one of `required_any_roles`.

        cc-backend's `/api/` rule is: a user with exactly one role must have `api`; a user with two
        or more must have both `admin` and `api`. That makes roles subtractive (adding `user` to an
        `api`-only account locks it out of the API) and gives admin routes no gate of their own. We
        check per route instead: job routes pass ("api",), admin routes ("admin",). Every caller
        cc-backend admits to job routes has `api` and is admitted here too; we only also admit
        accounts like ("api", "user") that cc-backend refuses for no security reason.
        """
        unknown = set(required_any_roles) - ALL_ROLES
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}: nobody could ever pass this check")

        async def authenticate(request: Request) -> Principal:
            principal = await self.authenticate(request, required_any_roles)
            request.state.principal = principal
            return principal

        return authenticate

    async def authenticate(self, request: Request, required_any_roles: Sequence[str]) -> Principal:
        """The request's principal, or ApiError 401 (who are you?) or 403 (not from there / not you)."""
        if self._disabled:
            return ANONYMOUS
        client_ip = request.client.host if request.client else ""
        if not ip_in_allow_list(client_ip, self._allowed):
            raise Refusal(403, f"IP address {client_ip or '<unknown>'} is not allowed to use the API",
                          RefusalReason.IP_NOT_ALLOWED)
        principal = self._verify(token_from_headers(request.headers))
        if required_any_roles and not principal.has_any_role(required_any_roles):
            raise Refusal(403, f"user {principal.username} lacks role {' or '.join(required_any_roles)}",
                          RefusalReason.WRONG_ROLE)
        return principal

    def _verify(self, token: str) -> Principal:
        if self._authenticator is None:
            raise Refusal(401, "token authentication is not configured: JWT_PUBLIC_KEY is not set",
                          RefusalReason.NOT_CONFIGURED)
        return self._authenticator.verify(token)
