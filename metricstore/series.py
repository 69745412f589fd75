"""Turns a line's measurement and tags into a series key (cluster, host, level, metric), pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from streams.nodelist import host_name_problem


class LineError(ValueError):
    """A line that cannot be stored; `reason` is the counter it is booked under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """Where a sample belongs. `level` is "" for the node, else "socket0" or "accelerator<id>/nvlink2"."""

    cluster: str
    host: str
    level: str
    metric: str


_ESCAPED = re.compile(r"\\(.)")


def _unescape(text: str) -> str:
    return _ESCAPED.sub(r"\1", text) if "\\" in text else text


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split on `sep` except where it is escaped with a backslash (line protocol escaping)."""
    if "\\" not in text:
        return text.split(sep)
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def check_name(kind: str, value: str) -> str:
    """Names become tree levels and snapshot file names, so path-like values are refused."""
    if not value:
        raise LineError("invalid_name", f"empty {kind}")
    if ".." in value or "/" in value or "\\" in value:
        raise LineError("invalid_name", f"invalid {kind} {value!r}: must not contain '..', '/' or '\\'")
    return value


def parse_series(series: str, default_cluster: str | None) -> SeriesKey:
    """Parse `metric,tag=v,...`; raises LineError with the reason and a precise message."""
    parts = split_unescaped(series, ",")
    metric = _unescape(parts[0])
    if not metric:
        raise LineError("parse_error", "missing measurement (metric name)")
    tags: dict[str, str] = {}
    for part in parts[1:]:
        key, eq, value = part.partition("=") if "\\" not in part else _split_tag(part)
        if not eq or not key:
            raise LineError("parse_error", f"malformed tag {part!r}: expected key=value")
        tags[_unescape(key)] = _unescape(value)
    cluster = tags.get("cluster") or default_cluster
    if not cluster:
        raise LineError("missing_cluster", "no cluster tag and no default cluster (?cluster= or cluster-tag)")
    host = tags.get("hostname") or tags.get("host")
    if not host:
        raise LineError("missing_host", "missing 'hostname' (or 'host') tag")
    problem = host_name_problem(check_name("hostname", host))
    if problem is not None:
        raise LineError("invalid_hostname", problem)
    return SeriesKey(check_name("cluster", cluster), host, _level(tags), metric)


def _split_tag(part: str) -> tuple[str, str, str]:
    pieces = split_unescaped(part, "=")
    if len(pieces) < 2:
        return part, "", ""
    return pieces[0], "=", "=".join(pieces[1:])


def _level(tags: dict[str, str]) -> str:
    typ = tags.get("type", "node")
    if typ == "node":
        return ""  # a node line adds no level; stype only applies below a non-node type
    type_id = tags.get("type-id")
    if type_id is None or type_id == "":
        raise LineError("parse_error", f"type={typ} needs a 'type-id' tag")
    level = check_name("type", typ) + check_name("type-id", type_id)
    stype = tags.get("stype")
    if stype:
        stype_id = tags.get("stype-id", "")
        level += "/" + check_name("stype", stype) + (check_name("stype-id", stype_id) if stype_id else "")
    return level


def split_level(level: str) -> tuple[str, str]:
    """("socket", "0") from "socket0", ("node", "") from ""; for archives in cc-backend's long format."""
    if not level:
        return "node", ""
    first = level.split("/", 1)[0]
    for prefix in ("memoryDomain", "accelerator", "hwthread", "socket", "core"):
        if first.startswith(prefix) and len(first) > len(prefix):
            return prefix, level[len(prefix):]
    return level, ""
