"""Canonical dumps of read-model files, and the row-by-row comparison of two of them.

Two databases built from the same events must dump identically whatever path built them: rows come
sorted by natural key, JSON columns are re-serialised with sorted keys, and columns that record when a
row was written (`insert_ts`) are left out. Surrogate ids stay in: cc-backend's URLs and API use them.
Both sides are streamed in key order and merged, so comparing million-row tables needs little memory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

#: Columns that say when a row was written, not what the events say.
VOLATILE = frozenset({"insert_ts"})


@dataclass(frozen=True)
class TableSpec:
    """How one table dumps: its natural key, JSON columns, and optionally a query resolving surrogate ids."""

    key: tuple[str, ...]
    json: frozenset[str] = frozenset()
    exclude: frozenset[str] = VOLATILE
    query: str | None = None


@dataclass(frozen=True)
class Difference:
    """One cell (or a whole row, column `*`) where the two databases disagree."""

    table: str
    key: tuple[tuple[str, Any], ...]
    column: str
    live: Any
    rebuilt: Any

    def describe(self) -> str:
        where = " ".join(f"{k}={v!r}" for k, v in self.key)
        if self.column == "*":
            side = "live" if self.rebuilt is None else "rebuilt"
            return f"{self.table} [{where}]: row only in the {side} database"
        return f"{self.table} [{where}] {self.column}: live {self.live!r} != rebuilt {self.rebuilt!r}"


@dataclass
class Comparison:
    """The first `limit` differences, how many there are per table, and rows per table (live side)."""

    differences: list[Difference] = field(default_factory=list)
    per_table: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.per_table.values())


def tables(conn: sqlite3.Connection) -> list[str]:
    """User tables of a database, by name."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return sorted(r[0] for r in rows)


def spec_for(conn: sqlite3.Connection, table: str, specs: Mapping[str, TableSpec]) -> TableSpec:
    """The declared spec, or one from the table's primary key (all columns when it has none)."""
    if table in specs:
        return specs[table]
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    pk = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]
    columns = [r[1] for r in info if r[1] not in VOLATILE]
    return TableSpec(key=tuple(pk or columns))


def _canonical_json(value: Any) -> Any:
    if not isinstance(value, str | bytes):
        return value
    try:
        return orjson.dumps(orjson.loads(value), option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        return value


def _order(value: Any) -> tuple[int, Any]:
    # SQLite's ORDER BY: NULL < numbers < text < blob; text compares by code point like Python.
    if value is None:
        return (0, 0)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, bytes(value))


def canonical_rows(conn: sqlite3.Connection, table: str, spec: TableSpec) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(sort key, row) of a table in natural-key order, JSON normalised, volatile columns dropped."""
    source = spec.query or f'SELECT * FROM "{table}"'
    order = ", ".join(f'"{k}"' for k in spec.key)
    cursor = conn.execute(f"SELECT * FROM ({source}) ORDER BY {order}")
    columns = [d[0] for d in cursor.description]
    keep = [(i, c, c in spec.json) for i, c in enumerate(columns) if c not in spec.exclude]
    key_index = [columns.index(k) for k in spec.key]
    for raw in cursor:
        row = {c: _canonical_json(raw[i]) if js else raw[i] for i, c, js in keep}
        yield tuple(_order(raw[i]) for i in key_index), row


def compare(
    live: sqlite3.Connection, rebuilt: sqlite3.Connection, specs: Mapping[str, TableSpec], limit: int = 50
) -> Comparison:
    """Every difference between two databases, merging each table's rows in key order."""
    result = Comparison()
    in_live, in_rebuilt = set(tables(live)), set(tables(rebuilt))
    for table in sorted(in_live | in_rebuilt):
        spec = spec_for(live if table in in_live else rebuilt, table, specs)
        left = canonical_rows(live, table, spec) if table in in_live else iter(())
        right = canonical_rows(rebuilt, table, spec) if table in in_rebuilt else iter(())
        found = 0
        rows = 0
        for diff in _merge(table, spec, left, right):
            if diff is None:
                rows += 1
                continue
            found += 1
            if len(result.differences) < limit:
                result.differences.append(diff)
        result.rows[table] = rows
        if found:
            result.per_table[table] = found
    return result


def _merge(
    table: str, spec: TableSpec, left: Iterator[tuple[Any, dict[str, Any]]], right: Iterator[tuple[Any, dict[str, Any]]]
) -> Iterator[Difference | None]:
    """Differences of two key-ordered row streams; None once per live row, for counting."""
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            yield None
            yield Difference(table, _key(spec, a[1]), "*", a[1], None)
            a = next(left, None)
        elif a is None or b[0] < a[0]:
            yield Difference(table, _key(spec, b[1]), "*", None, b[1])
            b = next(right, None)
        else:
            yield None
            for column in sorted(set(a[1]) | set(b[1])):
                if a[1].get(column) != b[1].get(column):
                    yield Difference(table, _key(spec, a[1]), column, a[1].get(column), b[1].get(column))
            a, b = next(left, None), next(right, None)


def _key(spec: TableSpec, row: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple((k, row.get(k)) for k in spec.key)


def write_dump(conn: sqlite3.Connection, specs: Mapping[str, TableSpec], out: IO[bytes]) -> int:
    """The canonical dump as JSON Lines (`{"table", "row"}`), for diffing with ordinary tools."""
    count = 0
    for table in tables(conn):
        for _, row in canonical_rows(conn, table, spec_for(conn, table, specs)):
            out.write(orjson.dumps({"table": table, "row": row}, option=orjson.OPT_SORT_KEYS) + b"\n")
            count += 1
    return count
