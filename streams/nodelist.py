"""Compiled cc-backend nodelist expressions (`f[0101-0188],login`): membership without expansion."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import hostlist

# cc-backend allows letters, digits and '-' in literal parts; '.' and '_' are added because real
# hostnames (FQDNs, site conventions) use them and nothing in the grammar makes them ambiguous.
_LITERAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
_DIGITS = frozenset("0123456789")



def host_name_problem(host: str) -> str | None:
    """Why `host` is no host name, or None: the characters a nodelist can name, nothing else.

    A full-width f (U+FF46) or a Cyrillic a (U+0430) in a host name looks like the real node on every
    screen, but matches no nodelist and no metric series: it would make a job or a series no view can
    find. The message names the character, so the sender can see what it cannot see on screen."""
    if host and _LITERAL_CHARS.issuperset(host):
        return None
    if not host:
        return "empty host name"
    char = next(c for c in host if c not in _LITERAL_CHARS)
    name = unicodedata.name(char, "")
    return (f"host name {host!r} contains {char!r} (U+{ord(char):04X}{' ' + name if name else ''}); "
            "host names are ASCII letters, digits, '-', '_' and '.'")


WILDCARD = "*"
DEFAULT_EXPAND_LIMIT = hostlist.MAX_SIZE


class NodeListError(ValueError):
    """A malformed nodelist expression; the message names the expression and the 0-based position."""

    def __init__(self, expression: str, position: int, problem: str) -> None:
        super().__init__(f"invalid nodelist {expression!r}: {problem} at position {position}")
        self.expression = expression
        self.position = position
        self.problem = problem


@dataclass(frozen=True, slots=True)
class _Range:
    """Inclusive numbers printed zero-padded to `width`, the digit count of the written start.

    For equal-width bounds (the only form cc-backend accepts) every number has exactly `width`
    digits; unequal bounds follow Slurm/python-hostlist (`[8-12]`: 8, 9, 10, 11, 12).
    """

    start: int
    end: int
    width: int

    def lengths(self) -> range:
        """Digit counts a member can have, so matching tries a handful of slices, not the range."""
        return range(max(self.width, len(str(self.start))), max(self.width, len(str(self.end))) + 1)

    def matches(self, digits: str) -> bool:
        value = int(digits)
        # Canonical form only: "f101" and "f00101" are not "f0101".
        return self.start <= value <= self.end and len(digits) == max(self.width, len(str(value)))


_Part = str | tuple[_Range, ...]
_Term = tuple[_Part, ...]


class NodeList:
    """A parsed nodelist; `contains` walks the pattern, so `x[0-99999999]` costs what `x1` costs."""

    __slots__ = ("_terms", "_wildcard", "expression")

    def __init__(self, expression: str, terms: tuple[_Term, ...], wildcard: bool) -> None:
        self.expression = expression
        self._terms = terms
        self._wildcard = wildcard

    @classmethod
    def parse(cls, expression: str) -> NodeList:
        """Compile once at config load so that per-host lookups never re-parse."""
        if expression == WILDCARD:
            return cls(expression, (), True)
        return cls(expression, _Parser(expression).terms(), False)

    @property
    def is_wildcard(self) -> bool:
        """`*`: cc-backend's "every node of the cluster" subcluster."""
        return self._wildcard

    def contains(self, hostname: str) -> bool:
        if self._wildcard:
            return True
        return any(_match(term, 0, hostname, 0) for term in self._terms)

    def __contains__(self, hostname: object) -> bool:
        return isinstance(hostname, str) and self.contains(hostname)

    def count(self) -> int:
        """Node count without expanding; like cc-backend's NodeCount, repeated terms count twice."""
        if self._wildcard:
            raise ValueError("nodelist '*' matches any host and has no node count")
        total = 0
        for term in self._terms:
            size = 1
            for part in term:
                if not isinstance(part, str):
                    size *= sum(r.end - r.start + 1 for r in part)
            total += size
        return total

    def expand(self, limit: int = DEFAULT_EXPAND_LIMIT) -> list[str]:
        """All host names in order, duplicates dropped; refuses lists longer than `limit`.

        Refusing rather than truncating: a silently shortened host list is a wrong answer.
        """
        if self._wildcard:
            raise ValueError("nodelist '*' matches any host and cannot be expanded")
        if not self._terms:
            return []
        size = self.count()
        if size > limit:
            raise ValueError(f"nodelist {self.expression!r} has {size} nodes, more than the limit {limit}")
        try:
            return list(hostlist.expand_hostlist(self.expression))
        except hostlist.BadHostlist as exc:  # only when limit exceeds python-hostlist's own cap
            raise ValueError(f"nodelist {self.expression!r}: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NodeList) and other.expression == self.expression

    def __hash__(self) -> int:
        return hash(self.expression)

    def __repr__(self) -> str:
        return f"NodeList({self.expression!r})"


def parse_nodelist(expression: str) -> NodeList:
    """Function form of `NodeList.parse`, for call sites that map over strings."""
    return NodeList.parse(expression)


def _match(term: _Term, index: int, host: str, pos: int) -> bool:
    """Match `host[pos:]` against `term[index:]`; backtracks only over a few candidate digit counts."""
    if index == len(term):
        return pos == len(host)
    part = term[index]
    if isinstance(part, str):
        return host.startswith(part, pos) and _match(term, index + 1, host, pos + len(part))
    for rng in part:
        for length in rng.lengths():
            digits = host[pos : pos + length]
            if (
                len(digits) == length
                and _DIGITS.issuperset(digits)
                and rng.matches(digits)
                and _match(term, index + 1, host, pos + length)
            ):
                return True
    return False


class _Parser:
    """Recursive-descent parser that reports the exact offending position."""

    def __init__(self, expression: str) -> None:
        self.text = expression
        self.pos = 0

    def fail(self, problem: str, position: int | None = None) -> NodeListError:
        return NodeListError(self.text, self.pos if position is None else position, problem)

    def terms(self) -> tuple[_Term, ...]:
        # An empty expression is accepted (cc-backend does): it matches no host.
        if not self.text:
            return ()
        terms = [self.term()]
        while self.pos < len(self.text):
            self.pos += 1  # the top-level ','
            terms.append(self.term())
        return tuple(terms)

    def term(self) -> _Term:
        start = self.pos
        parts: list[_Part] = []
        text = self.text
        while self.pos < len(text) and text[self.pos] != ",":
            char = text[self.pos]
            if char in _LITERAL_CHARS:
                end = self.pos
                while end < len(text) and text[end] in _LITERAL_CHARS:
                    end += 1
                parts.append(text[self.pos : end])
                self.pos = end
            elif char == "[":
                parts.append(self.brackets())
            elif char == "]":
                raise self.fail("unmatched ']'")
            elif char == WILDCARD:
                raise self.fail("'*' is only valid as the whole expression")
            else:
                raise self.fail(f"invalid character {char!r}")
        if not parts:
            raise self.fail("empty term", start)
        return tuple(parts)

    def brackets(self) -> tuple[_Range, ...]:
        open_at = self.pos
        close_at = self.text.find("]", open_at)
        if close_at == -1:
            raise self.fail("unclosed '['", open_at)
        nested = self.text.find("[", open_at + 1, close_at)
        if nested != -1:
            raise self.fail("nested '['", nested)
        if close_at == open_at + 1:
            raise self.fail("empty '[]'", open_at)
        ranges = []
        item_at = open_at + 1
        for item in self.text[open_at + 1 : close_at].split(","):
            ranges.append(self.range(item, item_at))
            item_at += len(item) + 1
        self.pos = close_at + 1
        return tuple(ranges)

    def range(self, item: str, at: int) -> _Range:
        low, dash, high = item.partition("-")
        if not dash:
            high = low
        self.number(low, at)
        self.number(high, at + len(low) + 1)
        start, end = int(low), int(high)
        if start > end:
            raise self.fail(f"range start {low} is greater than end {high}", at)
        return _Range(start, end, len(low))

    def number(self, digits: str, at: int) -> None:
        if not digits:
            raise self.fail("missing number in range", at)
        for offset, char in enumerate(digits):
            if char not in _DIGITS:
                raise self.fail(f"invalid character {char!r} in range", at + offset)
