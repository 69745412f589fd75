"""InfluxDB line protocol, parsed exactly: the envelope of cc-backend's NATS job and node-state events.

Pure functions. A batch is split into lines and each line parsed on its own, so one malformed line is
reported with its number and column while the lines around it still count. String field values may
span physical lines (an unescaped newline inside quotes is data), which is why splitting and parsing
are one pass rather than `splitlines()` first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FieldValue = str | float | int | bool

# Measurement, tag keys and tag values end at an unescaped ',', ' ' (and '=' for tags); a backslash
# escapes the next character.
_MEASUREMENT = re.compile(r"(?:[^\\, \n]|\\[^\n])+")
_TAG_KEY = re.compile(r"(?:[^\\,= \n]|\\[^\n])+")
_TAG_VALUE = _TAG_KEY
_FIELD_KEY = _TAG_KEY
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)  # possessive: no backtracking
_BARE_VALUE = re.compile(r"[^, \r\n]+")
_TIMESTAMP = re.compile(r"-?[0-9]+")
_SPACES = re.compile(r" +")
_NAME_ESCAPE = re.compile(r"\\([, =\\])")
_STRING_ESCAPE = re.compile(r'\\(["\\])')
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+i")
_UINTEGER = re.compile(r"[0-9]+u")
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})


@dataclass(frozen=True, slots=True)
class Line:
    """One parsed point: measurement, tags, fields and the optional timestamp (as written, any unit)."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    timestamp: int | None
    #: 1-based number of the line in its batch, for messages that name it.
    number: int = 1
    #: The line's text exactly as received (for dead letters and content-derived ids).
    raw: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class LineError:
    """A line that is not valid line protocol; `column` is 1-based within the line."""

    number: int
    column: int
    message: str
    raw: str

    def describe(self) -> str:
        return f"line {self.number}, column {self.column}: {self.message}"


class LineProtocolError(ValueError):
    """Raised by `parse_line` for a single malformed line."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column
        self.message = message


def parse_batch(data: bytes | str) -> list[Line | LineError]:
    """Every line of a batch, parsed or with its error; blank lines and `#` comments are skipped."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return [LineError(1, exc.start + 1, f"not valid UTF-8 ({exc.reason})", data.decode("utf-8", "replace"))]
    else:
        text = data
    out: list[Line | LineError] = []
    pos = 0
    number = 0
    end_of_text = len(text)
    while pos < end_of_text:
        number += 1
        newline = text.find("\n", pos)
        physical_end = end_of_text if newline == -1 else newline
        stripped = text[pos:physical_end].strip()
        if not stripped or stripped.startswith("#"):
            pos = physical_end + 1
            continue
        try:
            line, end = _Parser(text, pos, number).line()
        except LineProtocolError as exc:
            out.append(LineError(number, exc.column, exc.message, text[pos:physical_end].rstrip("\r")))
            pos = physical_end + 1
            continue
        out.append(line)
        # A string value may have carried the line across newlines: count them for later numbers.
        number += text.count("\n", pos, end)
        pos = end + 1
    return out


def parse_line(text: str) -> Line:
    """One line; LineProtocolError names the column and what is wrong."""
    line, end = _Parser(text, 0, 1).line()
    if end < len(text) and text[end:].strip():
        raise LineProtocolError(end + 1, "unexpected text after the line")
    return line


class _Parser:
    """Recursive descent over one line of `text` starting at `start`; columns are relative to it."""

    def __init__(self, text: str, start: int, number: int) -> None:
        self.text = text
        self.start = start
        self.pos = start
        self.number = number
        #: Where a string value that ran past a newline opened: the likely culprit of a later error.
        self.spanning_string: int | None = None

    def fail(self, message: str, at: int | None = None) -> LineProtocolError:
        return LineProtocolError((self.pos if at is None else at) - self.start + 1, message)

    def line(self) -> tuple[Line, int]:
        """The line and the index of its terminating newline (or the end of the text)."""
        try:
            return self._line()
        except LineProtocolError:
            if self.spanning_string is not None:
                raise self.fail("unterminated string field value (no closing quote on its line)",
                                self.spanning_string) from None
            raise

    def _line(self) -> tuple[Line, int]:
        self.skip_spaces()
        measurement = self.name(_MEASUREMENT, "measurement")
        tags: dict[str, str] = {}
        while self.peek() == ",":
            self.pos += 1
            key = self.name(_TAG_KEY, "tag key")
            self.expect("=", f"'=' after tag key {key!r}")
            tags[key] = self.name(_TAG_VALUE, f"value of tag {key!r}")
        if self.peek() not in (" ",):
            raise self.fail("expected a space before the fields" if self.peek() else "missing fields")
        self.skip_spaces()
        fields = self.fields()
        timestamp = None
        if self.peek() == " ":
            self.skip_spaces()
            if self.peek() not in ("", "\n", "\r"):
                timestamp = self.timestamp()
                self.skip_spaces()
        if self.peek() == "\r":
            self.pos += 1
        if self.peek() not in ("", "\n"):
            raise self.fail(f"unexpected character {self.peek()!r}")
        raw = self.text[self.start : self.pos]
        return Line(measurement, tags, fields, timestamp, self.number, raw), self.pos

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected {what}")
        self.pos += 1

    def skip_spaces(self) -> None:
        match = _SPACES.match(self.text, self.pos)
        if match:
            self.pos = match.end()

    def name(self, pattern: re.Pattern[str], what: str) -> str:
        match = pattern.match(self.text, self.pos)
        if match is None:
            raise self.fail(f"missing {what}")
        self.pos = match.end()
        token = match.group()
        return _NAME_ESCAPE.sub(_unescape, token) if "\\" in token else token

    def fields(self) -> dict[str, FieldValue]:
        fields: dict[str, FieldValue] = {}
        while True:
            key = self.name(_FIELD_KEY, "field key")
            self.expect("=", f"'=' after field key {key!r}")
            fields[key] = self.string() if self.peek() == '"' else self.bare_value(key)
            if self.peek() != ",":
                return fields
            self.pos += 1

    def string(self) -> str:
        opening = self.pos
        text = self.text
        match = _STRING.match(text, opening)
        if match is None:
            raise self.fail("unterminated string field value", opening)
        quote = match.end() - 1
        self.pos = quote + 1
        if self.spanning_string is None and text.find("\n", opening, quote) != -1:
            self.spanning_string = opening
        value = text[opening + 1 : quote]
        if "\\" not in value:
            return value
        if "\\\\" not in value:
            return value.replace('\\"', '"')  # the common case: JSON with escaped quotes only
        return _STRING_ESCAPE.sub(_unescape, value)

    def bare_value(self, key: str) -> FieldValue:
        at = self.pos
        match = _BARE_VALUE.match(self.text, self.pos)
        if match is None:
            raise self.fail(f"missing value of field {key!r}")
        token = match.group()
        self.pos = match.end()
        if _INTEGER.fullmatch(token):
            return int(token[:-1])
        if _UINTEGER.fullmatch(token):
            return int(token[:-1])
        if token in _TRUE:
            return True
        if token in _FALSE:
            return False
        if _FLOAT.fullmatch(token):
            return float(token)
        raise self.fail(f"invalid value {token!r} of field {key!r}", at)

    def timestamp(self) -> int:
        match = _TIMESTAMP.match(self.text, self.pos)
        end = _BARE_VALUE.match(self.text, self.pos)
        if match is None or end is None or match.end() != end.end():
            token = end.group() if end else self.peek()
            raise self.fail(f"invalid timestamp {token!r}")
        self.pos = match.end()
        return int(match.group())


def _unescape(match: re.Match[str]) -> str:
    return match.group(1)


def timestamp_seconds(timestamp: int) -> int:
    """Seconds from a line timestamp in s, ms, us or ns, told apart by magnitude (years 1973..5138)."""
    magnitude = abs(timestamp)
    if magnitude < 100_000_000_000:
        return timestamp
    if magnitude < 100_000_000_000_000:
        return timestamp // 1000
    if magnitude < 100_000_000_000_000_000:
        return timestamp // 1_000_000
    return timestamp // 1_000_000_000
