"""Machine state files: cc-backend's `machine-state-dir/<cluster>/<host>.json`, opaque JSON per node.

cc-backend stores whatever body a client PUTs and serves it back. Here the body is bounded, must be
JSON (a file that the GET later answers as `application/json` should be JSON), and is written through
a temp file and a rename, so a reader never sees half a file and a failed write leaves the old one.
These files are outside the event log on purpose: they are a node-side scratch area that cc-backend
neither versions nor audits, and replaying the log has nothing to rebuild from them.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from archive.backends.fsutil import atomic_write, make_dirs
from streams.nodelist import host_name_problem

#: Largest machine state body accepted; a bigger one is refused with 413 naming this limit.
MAX_MACHINE_STATE_BYTES = 1 << 20


class MachineStateError(ValueError):
    """A request the machine state store refuses; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def name_problem(name: str, what: str) -> str | None:
    """Why `name` cannot name a cluster or host directory entry, or None.

    The characters are those of a host name (ASCII letters, digits, `-`, `_`, `.`, see
    `streams.nodelist.host_name_problem`), so no `/`, `\\` or look-alike Unicode reaches the file
    system; a leading dot is refused too, which covers `.`, `..` and hidden files."""
    problem = host_name_problem(name)
    if problem is not None:
        return f"invalid {what}: {problem.replace('host name', what)}"
    if name.startswith(".") or ".." in name:
        return f"invalid {what}: {name!r} may not start with '.' or contain '..'"
    return None


class MachineStateStore:
    """The machine state files under one directory."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int = MAX_MACHINE_STATE_BYTES) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def path(self, cluster: str, host: str) -> Path:
        """The file of one node; a MachineStateError (400) for a name that is not a safe path component."""
        for name, what in ((cluster, "cluster name"), (host, "host name")):
            problem = name_problem(name, what)
            if problem is not None:
                raise MachineStateError(400, problem)
        return self.directory / cluster / f"{host}.json"

    def check_size(self, size: int) -> None:
        """Refuse (413) a body over the limit, by its announced or its read length."""
        if size > self.max_bytes:
            raise MachineStateError(413, f"machine state body larger than {self.max_bytes} bytes "
                                         f"(limit MAX_MACHINE_STATE_BYTES)")

    def put(self, cluster: str, host: str, body: bytes) -> Path:
        """Store `body` (JSON) as the node's state, atomically and durably; returns the file written."""
        target = self.path(cluster, host)
        self.check_size(len(body))
        if not body.strip():
            raise MachineStateError(400, "machine state body is empty, expected JSON")
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MachineStateError(400, f"machine state body is not JSON: {exc}") from None
        make_dirs(str(target.parent))
        atomic_write(target, body)
        return target

    def get(self, cluster: str, host: str) -> bytes:
        """The stored state of a node; a MachineStateError (404) when none was stored."""
        target = self.path(cluster, host)
        try:
            return target.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise MachineStateError(404, f"no machine state stored for host {host!r} of cluster {cluster!r}") from None
