"""The file archive: cc-backend's directory layout on a local or network file system."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

from archive.backends.codec import decode_object, decode_version, encode_data, encode_json, gzip_bytes
from archive.backends.fsutil import (
    atomic_write,
    ensure_dir,
    fsync_dir,
    make_dirs,
    read_bytes,
    remove_file,
    replace_file,
    sorted_subdirs,
)
from archive.backends.protocol import ArchiveEntry, ArchiveError, JobNotFound
from archive.paths import (
    CLUSTER_FILE,
    DATA_FILE,
    DATA_GZ_FILE,
    META_FILE,
    VERSION,
    VERSION_FILE,
    JobKey,
    check_name,
    key_for_store,
    key_from_parts,
)

_CHUNK = 512


class FileArchive:
    """`<root>/version.txt`, `<root>/<cluster>/cluster.json`, `<root>/<job dir>/{meta.json,data.json[.gz]}`."""

    kind = "file"

    def __init__(self, root: str | Path, *, readers: int = 4, durable: bool = True) -> None:
        self.root = Path(root)
        self.readers = readers
        #: False for bulk writers that call os.sync() once at the end instead of fsync per file.
        self.durable = durable
        self._root = str(self.root)
        self._root_ready = False  # version.txt known to be there: checked once, not per job

    def __repr__(self) -> str:
        return f"FileArchive({str(self.root)!r})"

    # -- archive and clusters ---------------------------------------------------------------------

    def version(self) -> int:
        raw = read_bytes(self.root / VERSION_FILE)
        if raw is None:
            raise ArchiveError(f"{self.root}: no {VERSION_FILE}; not a job archive")
        return decode_version(raw, str(self.root / VERSION_FILE))

    def _ensure_root(self) -> None:
        if self._root_ready:
            return
        if not (self.root / VERSION_FILE).is_file():
            ensure_dir(self.root, durable=self.durable)
            atomic_write(self.root / VERSION_FILE, f"{VERSION}\n".encode(), durable=self.durable)
        self._root_ready = True

    def clusters(self) -> list[str]:
        return [c for c in sorted_subdirs(str(self.root)) if (self.root / c / CLUSTER_FILE).is_file()]

    def load_cluster(self, name: str) -> dict[str, Any]:
        path = self.root / check_name(name, "cluster") / CLUSTER_FILE
        raw = read_bytes(path)
        if raw is None:
            raise JobNotFound(f"{path}: no such cluster")
        return decode_object(raw, str(path))

    def store_cluster(self, cluster: Mapping[str, Any]) -> None:
        name = check_name(cluster.get("name"), "cluster name")
        self._ensure_root()
        ensure_dir(self.root / name, durable=self.durable)
        atomic_write(self.root / name / CLUSTER_FILE, encode_json(cluster), durable=self.durable)

    # -- jobs --------------------------------------------------------------------------------------

    def _dir(self, cluster: str, job_id: int, start_time: int) -> Path:
        return self.root / JobKey.of(cluster, job_id, start_time).directory()

    def load_meta(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        path = self._dir(cluster, job_id, start_time) / META_FILE
        raw = read_bytes(path)
        if raw is None:
            raise JobNotFound(f"{path}: no such job")
        return decode_object(raw, str(path))

    def load_data(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        return _load_data(self._dir(cluster, job_id, start_time))

    def store_job(self, meta: Mapping[str, Any], data: Mapping[str, Any]) -> str:
        """Write data.json[.gz], then meta.json, each whole (temp file, fsync, rename).

        The job directory is synced once, after both renames and the removal, instead of after
        each: the entry is durable when this returns, and only then does a caller (the archiver)
        report it stored. A crash before that leaves whatever of the renames reached the disk
        (journaling file systems keep them in order: data before meta); the unreported job is
        archived again and its entry rewritten.
        """
        key = key_for_store(meta)
        location = key.directory()
        directory = f"{self._root}/{location}"
        self._ensure_root()
        created = make_dirs(directory, durable=self.durable)
        if self._root in created:  # the archive was removed under us: it needs its version.txt again
            self._root_ready = False
            self._ensure_root()
        raw, gzipped = encode_data(data)
        fresh, stale = (DATA_GZ_FILE, DATA_FILE) if gzipped else (DATA_FILE, DATA_GZ_FILE)
        replace_file(f"{directory}/{fresh}", raw, sync=self.durable)
        if not created:  # readers prefer .gz: drop the stale one (a new directory has none)
            remove_file(f"{directory}/{stale}", durable=False)
        replace_file(f"{directory}/{META_FILE}", encode_json(meta), sync=self.durable)
        if self.durable:
            fsync_dir(directory)
        return location

    def store_meta(self, meta: Mapping[str, Any]) -> str:
        key = key_for_store(meta)
        directory = self.root / key.directory()
        if not (directory / META_FILE).is_file():
            raise JobNotFound(f"{directory}: no such job")
        atomic_write(directory / META_FILE, encode_json(meta), durable=self.durable)
        return key.directory()

    def exists(self, cluster: str, job_id: int, start_time: int) -> bool:
        return (self._dir(cluster, job_id, start_time) / META_FILE).is_file()

    def delete_job(self, cluster: str, job_id: int, start_time: int) -> bool:
        directory = self._dir(cluster, job_id, start_time)
        if not directory.is_dir():
            return False
        shutil.rmtree(directory)
        # Drop the then-empty id levels as cc-backend's clean-up does; a non-empty one stays.
        parent = directory.parent
        for _ in range(2):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        fsync_dir(parent)
        return True

    def compress_job(self, cluster: str, job_id: int, start_time: int) -> bool:
        directory = self._dir(cluster, job_id, start_time)
        plain = directory / DATA_FILE
        raw = read_bytes(plain)
        if raw is None:
            return False
        atomic_write(directory / DATA_GZ_FILE, gzip_bytes(raw), durable=self.durable)
        remove_file(plain)
        return True

    # -- walking -----------------------------------------------------------------------------------

    def _job_dirs(self) -> Iterator[tuple[str, JobKey | None]]:
        root = str(self.root)
        for cluster in sorted_subdirs(root):
            c_path = os.path.join(root, cluster)
            for level1 in sorted_subdirs(c_path):
                l1_path = os.path.join(c_path, level1)
                for level2 in sorted_subdirs(l1_path):
                    l2_path = os.path.join(l1_path, level2)
                    for start in sorted_subdirs(l2_path):
                        yield f"{cluster}/{level1}/{level2}/{start}", key_from_parts(cluster, level1, level2, start)

    def iter_keys(self, *, started_before: int | None = None) -> Iterator[JobKey]:
        for location, key in self._job_dirs():
            if key is None or (started_before is not None and key.start_time >= started_before):
                continue
            if os.path.isfile(os.path.join(self.root, location, META_FILE)):
                yield key

    def iter_jobs(self, *, with_data: bool = False) -> Iterator[ArchiveEntry]:
        # Reads overlap with the caller's work: file system calls release the GIL, and on network
        # file systems (where archives usually live) each open is a round trip.
        dirs = self._job_dirs()
        with ThreadPoolExecutor(self.readers, thread_name_prefix="archive-read") as pool:
            while chunk := list(islice(dirs, _CHUNK)):
                yield from pool.map(lambda d: self._entry(d[0], d[1], with_data), chunk)

    def _entry(self, location: str, key: JobKey | None, with_data: bool) -> ArchiveEntry:
        if key is None:
            return ArchiveEntry(location, error=f"{location}: not a <jobId/1000>/<jobId%1000>/<startTime> directory")
        raw = read_bytes(f"{self._root}/{location}/{META_FILE}")
        if raw is None:
            return ArchiveEntry(location, key, error=f"{location}: missing {META_FILE}")
        try:
            meta = decode_object(raw, f"{location}/{META_FILE}")
            data = _load_data(self.root / location, location) if with_data else None
        except ArchiveError as exc:
            return ArchiveEntry(location, key, error=str(exc))
        return ArchiveEntry(location, key, meta, data)

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""


def _load_data(directory: Path, where: str | None = None) -> dict[str, Any]:
    # Like cc-backend: a data.json.gz wins over a data.json.
    for name in (DATA_GZ_FILE, DATA_FILE):
        raw = read_bytes(directory / name)
        if raw is not None:
            return decode_object(raw, f"{where}/{name}" if where else str(directory / name))
    raise JobNotFound(f"{where or directory}: no {DATA_FILE} or {DATA_GZ_FILE}")
