"""Durable file writes: temp file in the same directory, fsync, rename, fsync the directory.

cc-backend writes archive files in place, so a crash leaves a truncated meta.json that later breaks
imports and the UI. Here a reader sees the old file or the new one, whole, and after a power loss the
rename is on disk because the directory was synced too.

Paths may be strings: the archiver writes thousands of files, and pathlib objects cost more than the
system calls they end in.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: Prefix of temp files; readers skip dot-files, so a temp file left by a crash is never read as data.
TEMP_PREFIX = "."

StrPath = str | Path


def fsync_dir(directory: StrPath) -> None:
    """Make a directory's entries (creations, renames, removals) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: str, *, durable: bool = True) -> list[str]:
    """Create a directory and its missing parents; returns those created, outermost first.

    Asks for the directory itself first: in an archive its parents nearly always exist, so that is
    one mkdir rather than a stat per level. Each new directory's parent is synced (when durable) so
    the new entry survives a crash; a directory that was already there costs no sync.
    """
    parent = os.path.dirname(directory)
    created: list[str] = []
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:
        return created
    except FileNotFoundError:
        if not parent or parent == directory:
            raise
        created = make_dirs(parent, durable=durable)
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:  # another writer made it meanwhile
            return created
    if durable:
        fsync_dir(parent or ".")
    created.append(directory)
    return created


def ensure_dir(directory: StrPath, *, durable: bool = True) -> None:
    """Create a directory and its missing parents, syncing each parent so the new entries survive a crash."""
    make_dirs(str(directory), durable=durable)


def replace_file(path: str, data: bytes, *, sync: bool = True) -> None:
    """Replace `path` with `data` atomically: temp file (synced when `sync`), then rename.

    The rename is not yet durable: the caller syncs the directory, once for all the files it writes
    there (see atomic_write). On failure the old file is untouched and the temp file gone.
    """
    directory, name = os.path.split(path)
    tmp, fd = _create_temp(directory, name)
    try:
        try:
            os.fchmod(fd, 0o644)  # archive files are read by other tools, whatever our umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _create_temp(directory: str, name: str) -> tuple[str, int]:
    """A new hidden temp file beside `name` (path, open descriptor); a random name, made exclusively."""
    while True:
        tmp = os.path.join(directory, f"{TEMP_PREFIX}{name}.{os.urandom(6).hex()}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue


def atomic_write(path: StrPath, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` atomically and durably; on failure the old file is untouched.

    `durable=False` keeps the atomic rename but leaves syncing to the caller (bulk writers that sync
    once at the end, like the simulator's backfill).
    """
    path = str(path)
    replace_file(path, data, sync=durable)
    if durable:
        fsync_dir(os.path.dirname(path) or ".")


def remove_file(path: StrPath, *, durable: bool = True) -> bool:
    """Remove a file if present (durably unless the caller syncs the directory); True when it was there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    if durable:
        fsync_dir(os.path.dirname(path) or ".")
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
