"""Write-ahead log: length+CRC framed records, buffered in memory and written by the flusher thread."""

from __future__ import annotations

import os
import re
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

_HEADER = struct.Struct("<IIB")  # payload length, crc32 of payload, record kind
_SAMPLES_HEAD = struct.Struct("<II")  # block id, sample count
SEGMENT = re.compile(r"wal-(\d{10})\.log$")

KIND_ROWS = 1  # JSON: new block/rows definitions
KIND_SAMPLES = 2  # lz4: block id, rows, times, values
KIND_FREE = 3  # JSON: a /api/free/ call


def segment_path(directory: Path, seq: int) -> Path:
    return directory / f"wal-{seq:010d}.log"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """WAL segments in the directory, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := SEGMENT.match(p.name))]
    return sorted(found)


def encode_samples(block_id: int, rows: np.ndarray, times: np.ndarray, values: np.ndarray) -> bytes:
    """Samples as one compressed payload; lz4 because timestamps and row ids repeat a lot."""
    body = b"".join((rows.astype("<i4", copy=False).tobytes(), times.astype("<i8", copy=False).tobytes(),
                     values.astype("<f4", copy=False).tobytes()))
    return _SAMPLES_HEAD.pack(block_id, len(rows)) + pa.compress(body, codec="lz4", asbytes=True)


def decode_samples(payload: bytes) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    block_id, n = _SAMPLES_HEAD.unpack_from(payload)
    body = pa.decompress(payload[_SAMPLES_HEAD.size :], decompressed_size=16 * n, codec="lz4", asbytes=True)
    rows = np.frombuffer(body, "<i4", n, 0).astype(np.int64)
    times = np.frombuffer(body, "<i8", n, 4 * n).astype(np.int64)
    values = np.frombuffer(body, "<f4", n, 12 * n).astype(np.float32)
    return block_id, rows, times, values


class WalClosed(RuntimeError):
    """Records were appended to a writer that closed before they could be made durable."""


class WalWriter:
    """Appends are cheap (a list append under a lock); `flush` writes and fsyncs them, off the ingest path.

    Every append gets a mark (its record number: the count of records appended so far); `durable` is the
    mark up to which records are on disk and fsync'ed. `wait_durable` is the group commit of durable
    writes: the first waiter to get the I/O lock writes *everything* pending with one fsync, and the
    waiters queued behind it find their marks durable when they get the lock, so N concurrent requests
    cost about two fsyncs, not N.
    `fsync` is a seam for tests that count fsyncs; production uses `os.fsync`."""

    def __init__(self, directory: Path, seq: int, fsync: Callable[[int], None] = os.fsync) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.seq = seq
        self._fsync = fsync
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._io = threading.Lock()
        self._file = open(segment_path(directory, seq), "ab")  # noqa: SIM115 - lives as long as the writer
        self.bytes_written = 0
        self.appended = 0
        self.durable = 0
        self.fsyncs = 0

    def append(self, kind: int, payload: bytes) -> int:
        """Queue a record; returns its mark for `wait_durable`."""
        record = _HEADER.pack(len(payload), zlib.crc32(payload), kind) + payload
        with self._lock:
            self._pending.append(record)
            self.appended += 1
            return self.appended

    def flush(self) -> int:
        """Write what is pending and fsync; returns the number of bytes written."""
        with self._io:
            return self._flush_locked()

    def wait_durable(self, mark: int) -> None:
        """Return once every record up to `mark` is written and fsync'ed (sharing the fsync of others)."""
        if self.durable >= mark:
            return
        with self._io:
            if self.durable < mark:
                self._flush_locked()
            if self.durable < mark:
                raise WalClosed("the write-ahead log was closed before the batch reached the disk")

    def _flush_locked(self) -> int:
        with self._lock:
            pending, self._pending = self._pending, []
            upto = self.appended
        if self._file.closed:
            return 0
        if not pending:
            self.durable = upto
            return 0
        data = b"".join(pending)
        try:
            self._file.write(data)
            self._file.flush()
            self._fsync(self._file.fileno())
        except OSError:
            with self._lock:  # not durable: retried by the next flush, and no waiter is told otherwise
                self._pending[:0] = pending
            raise
        self.fsyncs += 1
        self.durable = upto
        self.bytes_written += len(data)
        return len(data)

    def rotate(self) -> int:
        """Start a new segment; records appended before the call stay in the old one. Returns the new seq.
        The caller holds the store's write lock, so no record can straddle the rotation."""
        with self._io:
            self._flush_locked()
            self._file.close()
            self.seq += 1
            self._file = open(segment_path(self.directory, self.seq), "ab")  # noqa: SIM115
            return self.seq

    def close(self) -> None:
        with self._io:
            self._flush_locked()
            self._file.close()


@dataclass(slots=True)
class ReadResult:
    records: int = 0
    torn_bytes: int = 0  # bytes after the last intact record (a torn write from a crash)


def read_segment(path: Path, result: ReadResult) -> Iterator[tuple[int, bytes]]:
    """Yield (kind, payload) of intact records; stop at the first torn or corrupt one."""
    data = path.read_bytes()
    pos = 0
    while pos + _HEADER.size <= len(data):
        length, crc, kind = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if end > len(data):
            break
        payload = data[pos + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            break
        result.records += 1
        yield kind, payload
        pos = end
    result.torn_bytes += len(data) - pos
