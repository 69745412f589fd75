"""Durable file writes: temp file in the same directory, fsync, rename, fsync the directory.

cc-backend writes archive files in place, so a crash leaves a truncated meta.json that later breaks
imports and the UI. Here a reader sees the old file or the new one, whole, and after a power loss the
rename is on disk because the directory was synced too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

#: Prefix of temp files; readers skip dot-files, so a temp file left by a crash is never read as data.
TEMP_PREFIX = "."


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (creations, renames, removals) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: Path, *, durable: bool = True) -> None:
    """Create a directory and its missing parents, syncing each parent so the new entries survive a crash."""
    missing: list[Path] = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another writer made it meanwhile
            path.mkdir(mode=0o755)
        if durable:
            fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` atomically and durably; on failure the old file is untouched.

    `durable=False` keeps the atomic rename but leaves syncing to the caller (bulk writers that sync
    once at the end, like the simulator's backfill).
    """
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; archive files are read by other tools
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(directory)


def remove_file(path: Path) -> bool:
    """Remove a file if present (durably); True when it was there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def read_bytes(path: Path | str) -> bytes | None:
    """A file's bytes, or None when it does not exist.

    Plain os.open/os.read: an import reads every meta.json of an archive, and a buffered file
    object costs more than the read itself for files of a few kB.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def sorted_subdirs(directory: str) -> list[str]:
    """Names of the visible subdirectories, sorted; [] when the directory is gone."""
    try:
        with os.scandir(directory) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []
