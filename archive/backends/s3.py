"""The S3 archive: the file layout as object keys in a bucket (optionally under a prefix), via boto3.

An S3 PUT is atomic (an object is replaced whole or not at all), so no temp objects are needed;
as in the file backend, data goes in before meta.json, which marks an entry complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from archive.backends.codec import decode_object, decode_version, encode_data, encode_json, gzip_bytes
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

T = TypeVar("T")
_MISSING = {"NoSuchKey", "404", "NotFound"}
_CHUNK = 256


class S3Archive:
    """A job archive in a bucket; keys mirror the file layout (`<cluster>/<l1>/<l2>/<start>/meta.json`)."""

    kind = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint: str = "",
        region: str = "",
        access_key: str = "",
        secret_key: str = "",
        use_path_style: bool = False,
        workers: int = 16,
    ) -> None:
        if not bucket:
            raise ArchiveError("S3 archive: no bucket configured (archive.bucket)")
        self.bucket = bucket
        #: The configured endpoint ("" for AWS): with bucket and prefix, what names the archive's storage.
        self.endpoint = endpoint
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.workers = workers
        self._rooted = False
        config = Config(
            s3={"addressing_style": "path" if use_path_style else "auto"},
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=max(workers, 10),
        )
        # Without explicit keys boto3's usual chain (environment, profile, instance role) applies.
        self._client = boto3.client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=region or "us-east-1",
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=config,
        )

    def __repr__(self) -> str:
        return f"S3Archive('s3://{self.bucket}/{self.prefix}')"

    # -- object primitives -------------------------------------------------------------------------

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _call(self, key: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise ArchiveError(f"{self._url(key)}: {error.get('Code')}: {error.get('Message')}") from None
        except BotoCoreError as exc:
            raise ArchiveError(f"{self._url(key)}: {exc}") from None

    def _get(self, key: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
            return bytes(response["Body"].read())
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise ArchiveError(f"{self._url(key)}: {exc}") from None
        except BotoCoreError as exc:
            raise ArchiveError(f"{self._url(key)}: {exc}") from None

    def _put(self, key: str, body: bytes) -> None:
        self._call(key, lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=body))

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            chunk = [{"Key": k} for k in keys[start : start + 1000]]
            self._call(keys[start], lambda c=chunk: self._client.delete_objects(  # type: ignore[misc]
                Bucket=self.bucket, Delete={"Objects": c, "Quiet": True}))

    def _list(self, prefix: str, delimiter: str = "") -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        pages = self._call(prefix or "/", lambda: iter(paginator.paginate(**kwargs)))
        while True:
            page = self._call(prefix or "/", lambda: next(pages, None))
            if page is None:
                return
            yield page

    def _keys(self, prefix: str) -> Iterator[str]:
        for page in self._list(prefix):
            for obj in page.get("Contents") or ():
                yield str(obj["Key"])

    # -- archive and clusters ---------------------------------------------------------------------

    def version(self) -> int:
        key = self.prefix + VERSION_FILE
        raw = self._get(key)
        if raw is None:
            raise ArchiveError(f"{self._url(key)}: missing; not a job archive")
        return decode_version(raw, self._url(key))

    def _ensure_root(self) -> None:
        if not self._rooted and self._get(self.prefix + VERSION_FILE) is None:
            self._put(self.prefix + VERSION_FILE, f"{VERSION}\n".encode())
        self._rooted = True

    def clusters(self) -> list[str]:
        names = []
        for page in self._list(self.prefix, "/"):
            for common in page.get("CommonPrefixes") or ():
                name = str(common["Prefix"])[len(self.prefix) :].rstrip("/")
                if name and not name.startswith(".") and self._get(f"{self.prefix}{name}/{CLUSTER_FILE}") is not None:
                    names.append(name)
        return sorted(names)

    def load_cluster(self, name: str) -> dict[str, Any]:
        key = f"{self.prefix}{check_name(name, 'cluster')}/{CLUSTER_FILE}"
        raw = self._get(key)
        if raw is None:
            raise JobNotFound(f"{self._url(key)}: no such cluster")
        return decode_object(raw, self._url(key))

    def store_cluster(self, cluster: Mapping[str, Any]) -> None:
        name = check_name(cluster.get("name"), "cluster name")
        self._ensure_root()
        self._put(f"{self.prefix}{name}/{CLUSTER_FILE}", encode_json(cluster))

    # -- jobs --------------------------------------------------------------------------------------

    def _dir(self, cluster: str, job_id: int, start_time: int) -> str:
        return f"{self.prefix}{JobKey.of(cluster, job_id, start_time).directory()}/"

    def load_meta(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        key = self._dir(cluster, job_id, start_time) + META_FILE
        raw = self._get(key)
        if raw is None:
            raise JobNotFound(f"{self._url(key)}: no such job")
        return decode_object(raw, self._url(key))

    def load_data(self, cluster: str, job_id: int, start_time: int) -> dict[str, Any]:
        return self._load_data(self._dir(cluster, job_id, start_time))

    def _load_data(self, directory: str) -> dict[str, Any]:
        for name in (DATA_GZ_FILE, DATA_FILE):
            raw = self._get(directory + name)
            if raw is not None:
                return decode_object(raw, self._url(directory + name))
        raise JobNotFound(f"{self._url(directory)}: no {DATA_FILE} or {DATA_GZ_FILE}")

    def store_job(self, meta: Mapping[str, Any], data: Mapping[str, Any]) -> str:
        key = key_for_store(meta)
        directory = f"{self.prefix}{key.directory()}/"
        self._ensure_root()
        raw, gzipped = encode_data(data)
        self._put(directory + (DATA_GZ_FILE if gzipped else DATA_FILE), raw)
        self._delete([directory + (DATA_FILE if gzipped else DATA_GZ_FILE)])
        self._put(directory + META_FILE, encode_json(meta))
        return key.directory()

    def store_meta(self, meta: Mapping[str, Any]) -> str:
        key = key_for_store(meta)
        if not self.exists(*key):
            raise JobNotFound(f"{self._url(self.prefix + key.directory())}: no such job")
        self._put(f"{self.prefix}{key.directory()}/{META_FILE}", encode_json(meta))
        return key.directory()

    def exists(self, cluster: str, job_id: int, start_time: int) -> bool:
        key = self._dir(cluster, job_id, start_time) + META_FILE
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return False
            raise ArchiveError(f"{self._url(key)}: {exc}") from None
        return True

    def delete_job(self, cluster: str, job_id: int, start_time: int) -> bool:
        keys = list(self._keys(self._dir(cluster, job_id, start_time)))
        if keys:
            self._delete(keys)
        return bool(keys)

    def compress_job(self, cluster: str, job_id: int, start_time: int) -> bool:
        directory = self._dir(cluster, job_id, start_time)
        raw = self._get(directory + DATA_FILE)
        if raw is None:
            return False
        self._put(directory + DATA_GZ_FILE, gzip_bytes(raw))
        self._delete([directory + DATA_FILE])
        return True

    # -- walking -----------------------------------------------------------------------------------

    def _job_dirs(self) -> Iterator[tuple[str, set[str]]]:
        """(job directory, its file names); S3 lists keys sorted, so one directory's keys are adjacent."""
        current: str | None = None
        names: set[str] = set()
        for key in self._keys(self.prefix):
            parts = key[len(self.prefix) :].split("/")
            if len(parts) != 5 or any(p.startswith(".") for p in parts):
                continue  # version.txt, cluster.json, stray objects
            directory = "/".join(parts[:4])
            if directory != current:
                if current is not None:
                    yield current, names
                current, names = directory, set()
            names.add(parts[4])
        if current is not None:
            yield current, names

    def iter_keys(self, *, started_before: int | None = None) -> Iterator[JobKey]:
        for location, names in self._job_dirs():
            key = key_from_parts(*location.split("/"))
            if key is None or META_FILE not in names:
                continue
            if started_before is None or key.start_time < started_before:
                yield key

    def iter_jobs(self, *, with_data: bool = False) -> Iterator[ArchiveEntry]:
        # One GET per object: fetch many at once, in order, so a remote archive imports at speed.
        dirs = self._job_dirs()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="s3-archive") as pool:
            while chunk := list(islice(dirs, _CHUNK)):
                yield from pool.map(lambda d: self._entry(d[0], d[1], with_data), chunk)

    def _entry(self, location: str, names: set[str], with_data: bool) -> ArchiveEntry:
        key = key_from_parts(*location.split("/"))
        if key is None:
            return ArchiveEntry(location, error=f"{location}: not a <jobId/1000>/<jobId%1000>/<startTime> key prefix")
        if META_FILE not in names:
            return ArchiveEntry(location, key, error=f"{location}: missing {META_FILE}")
        directory = f"{self.prefix}{location}/"
        try:
            raw = self._get(directory + META_FILE)
            if raw is None:
                return ArchiveEntry(location, key, error=f"{location}: missing {META_FILE}")
            meta = decode_object(raw, f"{location}/{META_FILE}")
            data = self._load_data(directory) if with_data else None
        except ArchiveError as exc:
            return ArchiveEntry(location, key, error=str(exc))
        return ArchiveEntry(location, key, meta, data)

    def close(self) -> None:
        self._client.close()
