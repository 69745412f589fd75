"""A real `ccstream serve` subprocess in a scratch directory, for crash tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
ADMIN = "admin"
FRITZ_MAIN_HOSTS = [f"f{rack:02d}{node:02d}" for rack in range(1, 11) for node in range(1, 89)]


def specs_dir() -> Path:
    """The reference specs: $CCSTREAM_SPECS, else `shared/specs` beside the clone, else /work/shared/specs."""
    if env := os.environ.get("CCSTREAM_SPECS"):
        return Path(env)
    for candidate in (REPO.parent / "shared" / "specs", Path("/work/shared/specs")):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("reference specs not found: set CCSTREAM_SPECS")


def ccstream_executable() -> str:
    """The console script of the venv running us (falls back to PATH)."""
    beside = Path(sys.executable).with_name("ccstream")
    if beside.exists():
        return str(beside)
    found = shutil.which("ccstream")
    if found is None:
        raise FileNotFoundError("the `ccstream` console script is not installed")
    return found


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_payload(job_id: int, start_time: int, *, host_index: int = 0, user: str = "alice",
                  project: str = "proj") -> dict[str, Any]:
    """A minimal valid `start_job` body for one node of fritz's `main` subcluster."""
    return {
        "jobId": job_id,
        "user": user,
        "project": project,
        "cluster": "fritz",
        "partition": "singlenode",
        "numNodes": 1,
        "numHwthreads": 72,
        "walltime": 86400,
        "submitTime": start_time - 60,
        "startTime": start_time,
        "resources": [{"hostname": FRITZ_MAIN_HOSTS[host_index % len(FRITZ_MAIN_HOSTS)]}],
        "metaData": {"jobName": f"job-{job_id}"},
    }


def stop_payload(job_id: int, start_time: int, stop_time: int, state: str = "completed") -> dict[str, Any]:
    """A `stop_job` body naming the exact run."""
    return {"jobId": job_id, "cluster": "fritz", "startTime": start_time, "stopTime": stop_time, "jobState": state}


class CcstreamServer:
    """A scratch ccstream installation (fritz, an admin+api user, a token) and its server process.

    `start()` serves on a free loopback port and waits for `/healthz`; `kill9()` and `restart()` crash
    it and bring it back on the same port and files; `stop()` (or leaving the `with` block) ends it.
    """

    def __init__(self, workdir: Path, *, log_level: str = "warning", extra_env: dict[str, str] | None = None,
                 command: Sequence[str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.log_level = log_level
        self.port = free_port()
        self.token = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        #: Extra arguments of `ccstream serve` (e.g. `--forwarded-allow-ips`).
        self.serve_args: tuple[str, ...] = ()
        self._exe = ccstream_executable()
        #: How `ccstream` is run: the console script, or e.g. `[python, "-m", "api.cli"]`.
        self._command = list(command) if command else [self._exe]
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        self._output = self.workdir / "server.log"
        #: The CA that signed the server's certificate when it serves HTTPS (`main.https-cert-file`).
        self.tls_ca: Path | None = None

    # -- set-up ---------------------------------------------------------------------------------

    def prepare(self, clusters: Sequence[str] = ("fritz",)) -> CcstreamServer:
        """`ccstream init` with the clusters (fritz by default), `add-user`, and a token from `ccstream jwt`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        templates = [str(specs_dir() / "archive" / name / "cluster.json") for name in clusters]
        self._cli("init", *(arg for t in templates for arg in ("--cluster", t)))
        self._cli("add-user", f"{ADMIN}:admin,api:secret-{os.getpid()}")
        self.token = self._cli("jwt", ADMIN).strip().splitlines()[-1]
        return self

    def use_account(self, name: str, roles: str) -> None:
        """Add a local user with these roles (comma-separated) and make its token the one `headers` send."""
        self._cli("add-user", f"{name}:{roles}:secret-{os.getpid()}")
        self.token = self._cli("jwt", name).strip().splitlines()[-1]

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [*self._command, "--log-level", "warning", *args], cwd=self.workdir, env=self._env,
            capture_output=True, text=True, timeout=120, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ccstream {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    # -- paths and addresses --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls_ca else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """httpx's `verify` for this server: its CA when it serves HTTPS."""
        return ssl.create_default_context(cafile=str(self.tls_ca)) if self.tls_ca else True

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def job_db(self) -> Path:
        return self.workdir / "var" / "job.db"

    @property
    def event_db(self) -> Path:
        return self.workdir / "var" / "events.db"

    # -- process control ------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start `ccstream serve` and wait until `/healthz` answers."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("server already running")
        with self._output.open("ab") as out:
            out.write(f"--- start {self.starts + 1} ---\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [*self._command, "--log-level", self.log_level, "serve", "--addr", f"127.0.0.1:{self.port}",
                 *self.serve_args],
                cwd=self.workdir, env=self._env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self.starts += 1
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output_tail()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0, verify=self.verify).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"server not healthy after {timeout}s:\n{self.output_tail()}")

    def kill9(self) -> None:
        """SIGKILL the server process (no shutdown, no flush) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def restart(self, timeout: float = 60.0) -> None:
        """Crash the server if it runs, then start it again on the same port and files."""
        self.kill9()
        self.start(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop gracefully (SIGTERM), SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def output_tail(self, lines: int = 40) -> str:
        """The end of the server's combined stdout/stderr."""
        try:
            return "\n".join(self._output.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> CcstreamServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextmanager
def running_server(workdir: Path, **kwargs: Any) -> Iterator[CcstreamServer]:
    """A prepared and started server, stopped on exit whatever happens."""
    server = CcstreamServer(workdir, **kwargs)
    try:
        server.prepare()
        server.start()
        yield server
    finally:
        server.stop()
