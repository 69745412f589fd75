"""Bytes of archive files: JSON encoding, the 2,000-byte gzip rule, and decoding that names what broke."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from typing import Any

import orjson

from archive.backends.protocol import CorruptEntry

#: cc-backend gzips data.json when its encoding is longer than this many bytes.
GZIP_THRESHOLD = 2000
_GZIP_MAGIC = b"\x1f\x8b"


def encode_json(value: Mapping[str, Any]) -> bytes:
    """Compact JSON as cc-backend's encoder writes it; NaN and infinities become null."""
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def encode_data(data: Mapping[str, Any]) -> tuple[bytes, bool]:
    """data.json bytes and whether they are gzipped (only above GZIP_THRESHOLD)."""
    raw = encode_json(data)
    if len(raw) > GZIP_THRESHOLD:
        return gzip_bytes(raw), True
    return raw, False


def gzip_bytes(raw: bytes) -> bytes:
    """Gzip with mtime 0, so equal data gives equal bytes (idempotent rewrites, stable checksums)."""
    return gzip.compress(raw, compresslevel=6, mtime=0)


def gunzip_bytes(raw: bytes, where: str) -> bytes:
    """Uncompressed bytes; CorruptEntry for truncated or damaged gzip."""
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise CorruptEntry(f"{where}: damaged gzip: {exc}") from None


def decode_object(raw: bytes, where: str) -> dict[str, Any]:
    """A JSON object from bytes (gzipped or plain); CorruptEntry for anything else."""
    if raw[:2] == _GZIP_MAGIC:
        raw = gunzip_bytes(raw, where)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CorruptEntry(f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(value, dict):
        raise CorruptEntry(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def decode_version(raw: bytes, where: str) -> int:
    """The number in version.txt."""
    text = raw.decode("utf-8", errors="replace").strip()
    if not text.isdigit():
        raise CorruptEntry(f"{where}: not a version number: {text[:40]!r}")
    return int(text)
