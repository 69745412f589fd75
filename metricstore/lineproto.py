"""InfluxDB line-protocol batch parser: a vectorised pyarrow fast path and an exact per-line path."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from metricstore.series import split_unescaped

_COLUMNS = ["s", "f", "t"]
_FLOAT = pacsv.ConvertOptions(column_types={"s": pa.string(), "f": pa.float64(), "t": pa.int64()},
                              strings_can_be_null=False)
_TEXT = pacsv.ConvertOptions(column_types={"s": pa.string(), "f": pa.string(), "t": pa.int64()},
                             strings_can_be_null=False)


@dataclass(slots=True)
class ParsedBatch:
    """Samples of a batch as arrays: each sample points into `series` (unique measurement+tags strings)."""

    series: list[str]
    series_idx: np.ndarray  # int32, one per sample
    values: np.ndarray  # float64
    times: np.ndarray  # int64, unix seconds
    lines: np.ndarray | None = None  # int32 line numbers (1-based), known on the per-line path only
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, message)


def to_seconds(ts: int) -> int:
    """Seconds from a timestamp in s, ms, us or ns, told apart by magnitude (years 1973..5138)."""
    if ts < 100_000_000_000:
        return ts
    if ts < 100_000_000_000_000:
        return ts // 1000
    if ts < 100_000_000_000_000_000:
        return ts // 1_000_000
    return ts // 1_000_000_000


def to_seconds_array(ts: np.ndarray) -> np.ndarray:
    """Vectorised `to_seconds`."""
    if ts.size == 0 or ts.max() < 100_000_000_000:
        return ts
    div = np.where(ts < 100_000_000_000, 1,
                   np.where(ts < 100_000_000_000_000, 1000,
                            np.where(ts < 100_000_000_000_000_000, 1_000_000, 1_000_000_000)))
    return ts // div


def _read(data: bytes, convert: pacsv.ConvertOptions) -> pa.Table | None:
    invalid: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row.text)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=_COLUMNS, use_threads=False,
                                           block_size=max(1 << 16, min(len(data) + 1, 1 << 26))),
            parse_options=pacsv.ParseOptions(delimiter=" ", quote_char=False, double_quote=False,
                                             escape_char=False, invalid_row_handler=on_invalid),
            convert_options=convert,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError):
        return None
    if any(not text.lstrip().startswith("#") for text in invalid):
        return None
    return table


def _integer_values(column: pa.ChunkedArray) -> np.ndarray | None:
    """Values of a batch with `4i`/`4u` integers among the floats (cc-metric-collector sends both)."""
    unsigned = pc.ends_with(column, "u")
    suffixed = pc.or_(pc.ends_with(column, "i"), unsigned)
    try:
        if pc.any(pc.and_(unsigned, pc.starts_with(column, "-"))).as_py():
            return None
        pc.cast(pc.utf8_slice_codeunits(pc.filter(column, suffixed), 0, -1), pa.int64())  # "1.5i" is bad
        plain = pc.if_else(suffixed, pc.utf8_slice_codeunits(column, 0, -1), column)
        return np.asarray(pc.cast(plain, pa.float64()).to_numpy())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _series_ok(column: pa.ChunkedArray) -> bool:
    """No empty measurement and no comment among the rows (checked on the raw buffers, not per string)."""
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        offsets = np.frombuffer(chunk.buffers()[1], np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        body = np.frombuffer(chunk.buffers()[2], np.uint8)
        if (np.diff(offsets) <= 0).any() or (body[offsets[:-1]] == ord("#")).any():
            return False
    return True


def parse_fast(data: bytes) -> ParsedBatch | None:
    """Parse a well-formed batch in a few vectorised passes; None means "use `parse_lines`".

    The field set must be exactly `value=<number>`: stripping " value=" first lets the CSV reader
    convert the column to float64 itself (anything else fails the conversion and goes per line)."""
    if b"\\" in data or b'"' in data or b"\t" in data:
        return None
    stripped = data.replace(b" value=", b" ")
    table = _read(stripped, _FLOAT)
    if table is None:
        table = _read(stripped, _TEXT)
        if table is None:
            return None
        values = _integer_values(table.column("f"))
        if values is None:
            return None
    else:
        values = table.column("f").to_numpy()
    if table.num_rows == 0:
        return ParsedBatch([], np.zeros(0, np.int32), np.zeros(0), np.zeros(0, np.int64))
    if not (len(stripped) + 6 * table.num_rows == len(data) and _series_ok(table.column("s"))):
        return None  # some line had no " value=" (or more than one): per-line path explains which
    if not np.isfinite(values).all():
        return None
    times = table.column("t").to_numpy()
    if times.min() < 0:
        return None
    # One Python string per line: dictionary-encoding costs more than it saves, since a collector
    # batch rarely repeats a series; the store's cache of known series strings does the dedup.
    series = table.column("s").to_pylist()
    return ParsedBatch(series, np.arange(len(series), dtype=np.int32), values, to_seconds_array(times))


def parse_value(text: str) -> float:
    """A field value as cc-metric-collector writes it: float, `4i` or `4u`; strings and booleans refused."""
    if not text:
        raise ValueError("empty value")
    if text[0] == '"':
        raise ValueError(f"field 'value' must be a number, got the string {text}")
    if text[-1] in "iu":
        digits = text[:-1]
        if not digits.lstrip("-").isdigit() or (text[-1] == "u" and digits.startswith("-")):
            raise ValueError(f"invalid {'unsigned ' if text[-1] == 'u' else ''}integer value {text!r}")
        return float(int(digits))
    if text in ("t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"):
        raise ValueError(f"field 'value' must be a number, got the boolean {text}")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"invalid number {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"value {text!r} is not finite")
    return value


def _split_line(line: str) -> list[str]:
    """Split on spaces that are neither escaped nor inside a quoted string field."""
    if "\\" not in line and '"' not in line:
        return line.split(" ")
    parts, cur, quoted, i = [], [], False, 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            cur.append(line[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == " " and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _parse_fields(fields: str) -> float:
    for item in split_unescaped(fields, ","):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"malformed field {item!r}: expected key=value")
        if key == "value":
            return parse_value(value)
    raise ValueError(f"no field 'value' in {fields!r}")


def parse_lines(data: bytes, now: int) -> ParsedBatch:
    """Parse line by line, keeping exact line numbers; a bad line is reported and the rest kept."""
    index: dict[str, int] = {}
    series: list[str] = []
    idx: list[int] = []
    values: list[float] = []
    times: list[int] = []
    lines: list[int] = []
    errors: list[tuple[int, str, str]] = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            errors.append((lineno, "parse_error", f"invalid UTF-8 at byte {exc.start}"))
            continue
        if not line or line[0] == "#":
            continue
        parts = [p for p in _split_line(line) if p]
        try:
            if len(parts) < 2:
                raise ValueError("expected '<measurement>[,tags] value=<number> [timestamp]'")
            if len(parts) > 3:
                raise ValueError(f"unexpected text after the timestamp: {' '.join(parts[3:])!r}")
            value = _parse_fields(parts[1])
            if len(parts) == 3:
                if not parts[2].lstrip("-").isdigit():
                    raise ValueError(f"invalid timestamp {parts[2]!r}")
                ts = int(parts[2])
                if ts < 0:
                    raise ValueError(f"negative timestamp {ts}")
                ts = to_seconds(ts)
            else:
                ts = now
        except ValueError as exc:
            errors.append((lineno, "parse_error", str(exc)))
            continue
        key = parts[0]
        pos = index.get(key)
        if pos is None:
            pos = index[key] = len(series)
            series.append(key)
        idx.append(pos)
        values.append(value)
        times.append(ts)
        lines.append(lineno)
    return ParsedBatch(series, np.asarray(idx, np.int32), np.asarray(values, np.float64),
                       np.asarray(times, np.int64), np.asarray(lines, np.int32), errors)
