"""`main.user` / `main.group`: a server started as root binds, then runs as that user; bad settings stop the start."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from api.privileges import PrivilegeError, plan
from tests.support.server import CcstreamServer, start_payload

ROOT = Path(__file__).resolve().parents[2]
NOBODY = pwd.getpwnam("nobody")


def test_no_user_and_no_group_keeps_the_process_as_it_is() -> None:
    assert plan("", "", euid=0) is None
    assert plan("", "", euid=1000) is None


def test_a_server_not_running_as_root_is_refused() -> None:
    with pytest.raises(PrivilegeError, match=r"main.user 'nobody' given, but ccstream runs as uid 1000, not as root"):
        plan("nobody", "", euid=1000)


def test_unknown_user_or_group_is_refused() -> None:
    with pytest.raises(PrivilegeError, match=r"main.user 'no-such-user-ccstream': no such user on this host"):
        plan("no-such-user-ccstream", "", euid=0)
    with pytest.raises(PrivilegeError, match=r"main.group 'no-such-group-ccstream': no such group on this host"):
        plan("nobody", "no-such-group-ccstream", euid=0)


def test_the_user_brings_its_primary_group_and_a_group_alone_keeps_the_uid() -> None:
    identity = plan("nobody", "", euid=0)
    assert identity is not None and identity.uid == NOBODY.pw_uid and identity.gid == NOBODY.pw_gid
    assert NOBODY.pw_gid in identity.groups
    only_group = plan("", "nogroup", euid=0)
    assert only_group is not None and only_group.uid is None and only_group.groups == (only_group.gid,)


def as_root() -> None:
    if os.geteuid() != 0:
        raise AssertionError("these tests start servers as root and drop to `nobody`: run them as root (CI does)")


def command_for(user: str) -> tuple[list[str], dict[str, str]]:
    """How to run ccstream so that `user` can still load Python after the switch.

    The process starts as root, but every module first imported after the switch is read as `user`. This
    interpreter serves when `user` can start it; otherwise (an interpreter under /root) the system's of the
    same version, with this interpreter's site-packages.
    """
    env = {"PYTHONPATH": str(ROOT)}
    probe = ["runuser", "-u", user, "--", sys.executable, "-c", "import encodings.idna"]
    if subprocess.run(probe, capture_output=True, check=False, env={**os.environ, **env}).returncode == 0:
        return [sys.executable, "-m", "api.cli"], env
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    assert system.exists(), f"{user} cannot run {sys.executable} and there is no {system}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{sysconfig.get_paths()['purelib']}"
    return [str(system), "-m", "api.cli"], env


def give_to(path: Path, uid: int, gid: int) -> None:
    for directory, dirs, files in os.walk(path):
        os.chown(directory, uid, gid)
        for name in dirs + files:
            os.chown(os.path.join(directory, name), uid, gid)


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A scratch directory `nobody` can reach (pytest's tmp_path is private to root)."""
    as_root()
    path = Path(tempfile.mkdtemp(prefix="ccstream-user-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def proc_ids(pid: int) -> tuple[list[int], list[int], list[int]]:
    """Real/effective/saved/fs uids, gids and supplementary groups of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return ([int(v) for v in fields["Uid"].split()], [int(v) for v in fields["Gid"].split()],
            [int(v) for v in fields["Groups"].split()])


def test_a_root_server_with_main_user_runs_as_that_user_and_serves(nobody_dir: Path) -> None:
    command, env = command_for("nobody")
    server = CcstreamServer(nobody_dir / "site", extra_env=env, command=command)
    server.prepare()  # as root: config.json, .env, var/ with the log and the job database, a user, a token
    config = orjson.loads((server.workdir / "config.json").read_bytes())
    config["main"]["user"] = "nobody"
    (server.workdir / "config.json").write_bytes(orjson.dumps(config))
    give_to(server.workdir, NOBODY.pw_uid, NOBODY.pw_gid)  # var/ must be the user's: documented in README
    with server:
        server.start()
        assert server.proc is not None
        uids, gids, groups = proc_ids(server.proc.pid)
        assert uids == [NOBODY.pw_uid] * 4 and gids == [NOBODY.pw_gid] * 4 and 0 not in groups
        started = httpx.post(f"{server.base_url}/api/jobs/start_job/", headers=server.headers,
                             json=start_payload(4242, 1_700_000_000), timeout=30)
        assert started.status_code == 201, started.text  # the log and the job database are written as nobody
        listed = httpx.get(f"{server.base_url}/api/jobs/", headers=server.headers, timeout=30)
        assert listed.status_code == 200 and [j["jobId"] for j in listed.json()["jobs"]] == [4242]


def test_main_user_when_not_root_exits_non_zero_with_the_message(nobody_dir: Path) -> None:
    command, env = command_for("nobody")
    (nobody_dir / "config.json").write_text('{"main": {"user": "nobody"}}')
    give_to(nobody_dir, NOBODY.pw_uid, NOBODY.pw_gid)
    done = subprocess.run(["runuser", "-u", "nobody", "--", *command, "serve"], cwd=nobody_dir,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **env}, check=False)
    assert done.returncode == 1
    assert (f"ccstream: main.user 'nobody' given, but ccstream runs as uid {NOBODY.pw_uid}, not as root"
            in done.stderr)
    assert not (nobody_dir / "var").exists()


def test_unknown_user_exits_non_zero_before_anything_is_opened(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"main": {"user": "no-such-user-ccstream"}}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "api.cli", "serve"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == "ccstream: main.user 'no-such-user-ccstream': no such user on this host"
    assert not (tmp_path / "var").exists()
