"""The ccstream command as an operator uses it: real files in a scratch directory, real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from api.auth import JWTAuthenticator
from api.keys import load_private_key, load_public_key

CCSTREAM = [sys.executable, "-m", "api.cli"]
ROOT = Path(__file__).resolve().parents[2]


def ccstream(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([*CCSTREAM, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v.strip('"') for k, v in pairs}


def test_init_creates_config_keys_and_archive(tmp_path: Path) -> None:
    result = ccstream(tmp_path, "init")
    assert result.returncode == 0, result.stderr
    config = orjson.loads((tmp_path / "config.json").read_bytes())
    assert config["main"]["addr"] == "localhost:8080"
    assert (tmp_path / "var" / "job-archive" / "version.txt").read_text().strip() == "3"
    env = read_env(tmp_path / ".env")
    load_public_key(env["JWT_PUBLIC_KEY"])
    load_private_key(env["JWT_PRIVATE_KEY"])
    assert env["SESSION_KEY"]
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    again = ccstream(tmp_path, "init")
    assert again.returncode == 0 and "exists, kept" in again.stdout
    assert read_env(tmp_path / ".env") == env


def test_add_user_then_jwt_gives_a_token_with_the_users_roles(tmp_path: Path) -> None:
    assert ccstream(tmp_path, "init").returncode == 0
    added = ccstream(tmp_path, "add-user", "alice:admin,api:secret")
    assert added.returncode == 0, added.stderr
    token = ccstream(tmp_path, "jwt", "alice")
    assert token.returncode == 0, token.stderr
    env = read_env(tmp_path / ".env")
    from datetime import timedelta

    principal = JWTAuthenticator(env["JWT_PUBLIC_KEY"], None, timedelta(hours=1)).verify(token.stdout.strip())
    assert principal.username == "alice" and set(principal.roles) == {"admin", "api"}
    deleted = ccstream(tmp_path, "del-user", "alice")
    assert deleted.returncode == 0
    gone = ccstream(tmp_path, "jwt", "alice")
    assert gone.returncode == 1 and gone.stderr.strip() == "ccstream: no such user: alice"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add-user", "bob"), "expected <username>:<role1,role2,...>:<password>"),
        (("add-user", "bob:wizard:pw"), "unknown role(s) wizard"),
        (("add-user", "bob:user:"), "only API users may have an empty password"),
        (("--config", "missing.json", "serve"), "missing.json: no such config file"),
    ],
)
def test_errors_are_one_line_and_non_zero(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    assert ccstream(tmp_path, "init").returncode == 0
    result = ccstream(tmp_path, *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_bad_config_key_stops_serve_with_the_key_named(tmp_path: Path) -> None:
    assert ccstream(tmp_path, "init").returncode == 0
    (tmp_path / "config.json").write_text('{"main": {"adress": "x"}}')
    result = ccstream(tmp_path, "serve")
    assert result.returncode == 1
    assert "config.json: unknown key 'main.adress'" in result.stderr


def test_serve_without_keys_says_what_to_do(tmp_path: Path) -> None:
    assert ccstream(tmp_path, "init").returncode == 0
    (tmp_path / ".env").write_text("")
    result = ccstream(tmp_path, "serve")
    assert result.returncode == 1
    assert "JWT_PUBLIC_KEY is not set" in result.stderr


def test_keygen_prints_a_usable_pair(tmp_path: Path) -> None:
    result = ccstream(tmp_path, "keygen")
    assert result.returncode == 0
    pairs = dict(line.split("=", 1) for line in result.stdout.strip().splitlines())
    load_public_key(pairs["JWT_PUBLIC_KEY"].strip('"'))
    load_private_key(pairs["JWT_PRIVATE_KEY"].strip('"'))


def all_commands() -> list[str]:
    import argparse

    from api.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


@pytest.mark.parametrize("command", all_commands())
def test_help_on_each_command(tmp_path: Path, command: str) -> None:
    result = ccstream(tmp_path, command, "--help")
    assert result.returncode == 0 and "usage: ccstream" in result.stdout
