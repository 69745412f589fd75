"""A real nats-server (with JetStream) on a free loopback port, as a context manager and pytest fixture."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CANDIDATES = ("/usr/bin/nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server")


def nats_server_binary() -> str:
    """Path of nats-server: $NATS_SERVER_BIN, then PATH, then the Debian locations."""
    env = os.environ.get("NATS_SERVER_BIN")
    if env:
        return env
    found = shutil.which("nats-server")
    if found:
        return found
    for path in CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("nats-server not found: apt-get install -y nats-server (or set NATS_SERVER_BIN)")


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NatsServer:
    """A running server: `url` for clients, `store_dir` for JetStream data, `process` to kill it."""

    url: str
    port: int
    store_dir: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"nats-server exited with {process.returncode}: {out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                if sock.recv(4).startswith(b"INFO"):
                    return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nats-server did not accept connections on port {port} within {timeout}s")


@contextlib.contextmanager
def nats_server(store_dir: Path | None = None, port: int | None = None, jetstream: bool = True,
                timeout: float = 10.0) -> Iterator[NatsServer]:
    """Start `nats-server -js -a 127.0.0.1 -p <port> -sd <dir>` and stop it on exit."""
    with contextlib.ExitStack() as stack:
        if store_dir is None:
            store_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nats-")))
        port = port or free_port()
        args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-sd", str(store_dir)]
        if jetstream:
            args.insert(1, "-js")
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        server = NatsServer(f"nats://127.0.0.1:{port}", port, store_dir, process)
        stack.callback(server.stop)
        _wait_ready(port, process, timeout)
        yield server


@pytest.fixture
def nats_server_factory(tmp_path: Path) -> Iterator[Callable[..., NatsServer]]:
    """Start as many servers as a test needs (e.g. to restart one on the same port); all stop at teardown."""
    with contextlib.ExitStack() as stack:
        count = 0

        def start(port: int | None = None, jetstream: bool = True) -> NatsServer:
            nonlocal count
            count += 1
            directory = tmp_path / f"nats-{count}"
            directory.mkdir()
            return stack.enter_context(nats_server(directory, port=port, jetstream=jetstream))

        yield start


@pytest.fixture
def nats_url(nats_server_factory: Callable[..., NatsServer]) -> str:
    """URL of a fresh nats-server for this test."""
    return nats_server_factory().url
