"""Reading a file archive for an import: a whole `<cluster>/<jobId/1000>` directory per reader task.

`FileArchive.iter_jobs` hands each job directory to its reader pool on its own. An import reads
every meta.json once, and there a future per file and the GIL changing hands around it cost more
than the read (microseconds from the page cache): reading was a third of the import's CPU time.
Here a reader task lists and reads one `<jobId/1000>` directory (up to a thousand jobs) into bytes,
so reads still overlap on network file systems where each open is a round trip, and the importing
thread decodes them itself (decoding holds the GIL wherever it runs). At most `readers` directories
are read ahead. The entries are those `iter_jobs()` yields, in its order; a test pins that.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from archive.backends.codec import decode_object
from archive.backends.file import FileArchive
from archive.backends.fsutil import sorted_subdirs
from archive.backends.protocol import ArchiveEntry, ArchiveError
from archive.paths import META_FILE, InvalidName, JobKey, check_name

T = TypeVar("T")
R = TypeVar("R")
#: (location, key or None when the directory is not cc-backend's layout, meta.json bytes or None).
RawEntry = tuple[str, JobKey | None, bytes | None]

_NOT_LAYOUT = "not a <jobId/1000>/<jobId%1000>/<startTime> directory"
#: meta.json is a few kB; one read of this size gets it whole, and a smaller buffer than
#: read_bytes' 1 MiB saves an allocation the size of a megabyte per file.
_READ_SIZE = 1 << 16


def iter_file_entries(archive: FileArchive) -> Iterator[ArchiveEntry]:
    """`archive.iter_jobs()` (meta.json only), read a `<jobId/1000>` directory per task."""
    root = str(archive.root)
    readers = max(1, archive.readers)
    with ThreadPoolExecutor(readers, thread_name_prefix="import-read") as pool:
        for raw_entries in prefetched(pool, lambda group: read_group(root, *group), _groups(root), ahead=readers):
            for raw_entry in raw_entries:
                yield entry(*raw_entry)


def _groups(root: str) -> Iterator[tuple[str, str, bool]]:
    """(cluster, level1 directory, whether the cluster's name is a safe one) in walk order."""
    for cluster in sorted_subdirs(root):
        try:
            check_name(cluster, "cluster")
            cluster_ok = True
        except InvalidName:
            cluster_ok = False
        for level1 in sorted_subdirs(f"{root}/{cluster}"):
            yield cluster, level1, cluster_ok


def read_group(root: str, cluster: str, level1: str, cluster_ok: bool) -> list[RawEntry]:
    """Every job directory under `<root>/<cluster>/<level1>` with its meta.json bytes, in walk order.

    The key is `key_from_parts`' with the cluster name checked once per directory, not per job.
    Below `<level1>` there should be nothing but directories, so names are listed without asking
    which are directories (a third of the listing's cost); a stray file is told apart only when
    reading its meta.json fails, and left out as `iter_jobs` leaves it out.
    """
    out: list[RawEntry] = []
    l1_path = f"{root}/{cluster}/{level1}"
    for level2 in visible_names(l1_path):  # a file here lists as no entries
        l2_path = f"{l1_path}/{level2}"
        prefix = f"{cluster}/{level1}/{level2}/"
        layout = cluster_ok and level1.isdigit() and level2.isdigit() and len(level2) == 3
        job_base = int(level1) * 1000 + int(level2) if layout else 0
        for start in visible_names(l2_path):
            if layout and start.isdigit():
                meta = read_small(f"{l2_path}/{start}/{META_FILE}")
                if meta is not None or os.path.isdir(f"{l2_path}/{start}"):
                    out.append((prefix + start, JobKey(cluster, job_base, int(start)), meta))
            elif os.path.isdir(f"{l2_path}/{start}"):
                out.append((prefix + start, None, None))
    return out


def visible_names(directory: str) -> list[str]:
    """The sorted names in a directory but dot-files; [] when it is gone or not a directory."""
    try:
        return sorted(name for name in os.listdir(directory) if not name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def entry(location: str, key: JobKey | None, raw: bytes | None) -> ArchiveEntry:
    """The ArchiveEntry `FileArchive.iter_jobs` makes of a job directory (same messages)."""
    if key is None:
        return ArchiveEntry(location, error=f"{location}: {_NOT_LAYOUT}")
    if raw is None:
        return ArchiveEntry(location, key, error=f"{location}: missing {META_FILE}")
    try:
        meta = decode_object(raw, f"{location}/{META_FILE}")
    except ArchiveError as exc:
        return ArchiveEntry(location, key, error=str(exc))
    return ArchiveEntry(location, key, meta)


def read_small(path: str) -> bytes | None:
    """A small file's bytes, or None when it does not exist (as `fsutil.read_bytes`)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        raw = os.read(fd, _READ_SIZE)
        if len(raw) < _READ_SIZE:
            return raw
        chunks = [raw]
        while chunk := os.read(fd, _READ_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def prefetched(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], *, ahead: int) -> Iterator[R]:
    """`pool.map(fn, items)` with at most `ahead` results waiting: memory stays bounded on any archive."""
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
