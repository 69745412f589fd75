"""Key and password formats: byte-compatible with cc-backend's `.env` and its bcrypt user table."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from api.keys import (
    encode_public_key,
    generate_keypair,
    generate_session_key,
    load_private_key,
    load_public_key,
)
from api.passwords import check_password, hash_password

# RFC 8032, section 7.1, TEST 1: an Ed25519 key and signature nobody here derived.
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIGNATURE_OF_EMPTY = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
    "d25bf5f0595bbe24655141438e7a100b"
)

# What Go prints for that seed: base64.StdEncoding of ed25519.NewKeyFromSeed(seed) and of its Public().
GO_PUBLIC_B64 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
GO_PRIVATE_B64 = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGg=="

# The `demo` user of cc-backend's test database (specs/db), password "demo", hashed by Go's bcrypt.
GO_DEMO_HASH = "$2a$10$M9pRk3cfefX1L5fTwuGzR.ecqpBS4A77r.K/2U9SMjmOsCodLzZiy"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def seed_of(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


# ---------------------------------------------------------------- keys


def test_go_format_built_by_hand_from_the_rfc_seed_is_exactly_what_go_prints() -> None:
    assert b64(RFC_SEED + RFC_PUBLIC) == GO_PRIVATE_B64
    assert b64(RFC_PUBLIC) == GO_PUBLIC_B64


def test_go_private_key_loads_to_its_seed_and_signs_like_the_rfc() -> None:
    private = load_private_key(GO_PRIVATE_B64)
    assert seed_of(private) == RFC_SEED
    assert private.sign(b"") == RFC_SIGNATURE_OF_EMPTY
    load_public_key(GO_PUBLIC_B64).verify(RFC_SIGNATURE_OF_EMPTY, b"")  # raises if wrong


def test_seed_only_private_key_is_accepted() -> None:
    assert seed_of(load_private_key(b64(RFC_SEED))) == RFC_SEED


def test_generated_keypair_has_go_sizes_and_round_trips() -> None:
    public_b64, private_b64 = generate_keypair()
    public_raw, private_raw = base64.b64decode(public_b64), base64.b64decode(private_b64)
    assert (len(public_raw), len(private_raw)) == (32, 64)
    assert private_raw[32:] == public_raw
    private = load_private_key(private_b64)
    assert encode_public_key(private.public_key()) == public_b64
    assert encode_public_key(load_public_key(public_b64)) == public_b64


def test_generated_keypairs_differ() -> None:
    assert generate_keypair() != generate_keypair()


def test_surrounding_whitespace_from_env_files_is_ignored() -> None:
    assert encode_public_key(load_public_key(f"  {GO_PUBLIC_B64}\n")) == GO_PUBLIC_B64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "JWT_PUBLIC_KEY is empty"),
        ("not base64!", "JWT_PUBLIC_KEY is not valid standard base64"),
        (GO_PUBLIC_B64.rstrip("="), "JWT_PUBLIC_KEY is not valid standard base64"),
        (b64(b"\xfb" * 32).replace("+", "-").replace("/", "_"), "not valid standard base64"),
        (b64(bytes(31)), "JWT_PUBLIC_KEY must decode to 32 bytes, got 31"),
        (GO_PRIVATE_B64, "JWT_PUBLIC_KEY must decode to 32 bytes, got 64"),
    ],
)
def test_malformed_public_keys_are_refused_precisely(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_public_key(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("   ", "JWT_PRIVATE_KEY is empty"),
        ("%%%%", "JWT_PRIVATE_KEY is not valid standard base64"),
        (b64(bytes(48)), "must decode to 64 bytes \\(seed \\+ public key\\) or 32 bytes \\(seed\\), got 48"),
        (b64(RFC_SEED + bytes(32)), "last 32 bytes are not the seed's public key"),
    ],
)
def test_malformed_private_keys_are_refused_precisely(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_private_key(text)


def test_session_key_is_base64_of_32_random_bytes() -> None:
    key = generate_session_key()
    assert len(base64.b64decode(key, validate=True)) == 32
    assert key != generate_session_key()


# ---------------------------------------------------------------- passwords


def test_hash_is_go_style_cost_10_and_checks() -> None:
    hashed = hash_password("s3cret")
    assert hashed.startswith("$2a$10$")
    assert check_password("s3cret", hashed)
    assert not check_password("s3cret ", hashed)


def test_hash_written_by_cc_backend_checks() -> None:
    assert check_password("demo", GO_DEMO_HASH)
    assert not check_password("Demo", GO_DEMO_HASH)


def test_non_ascii_passwords_work() -> None:
    assert check_password("pässwörd-✓", hash_password("pässwörd-✓"))


@pytest.mark.parametrize("hashed", ["", "garbage", "$2a$10$short", "$2a$99$" + "a" * 53, "hällo", "\x00"])
def test_malformed_hashes_never_raise(hashed: str) -> None:
    assert check_password("demo", hashed) is False


def test_passwords_over_72_bytes_are_refused_when_hashing() -> None:
    with pytest.raises(ValueError, match="73 bytes long; bcrypt accepts at most 72"):
        hash_password("x" * 73)


def test_check_counts_only_72_bytes_like_go() -> None:
    hashed = hash_password("x" * 72)
    assert check_password("x" * 72 + "tail", hashed)
    assert not check_password("x" * 71, hashed)
