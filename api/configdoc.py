"""Renders the reference of every config.json setting from the settings models (configs/README.md)."""

from __future__ import annotations

import ast
import inspect
import sys
import types
from pathlib import Path
from types import ModuleType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from api import passwords
from api.bodylimit import BODY_LIMIT_SETTINGS, setting_value
from api.config import Settings
from api.graphql import limits as graphql_limits
from api.graphql import mutations as graphql_mutations
from api.unsupported import NOT_SUPPORTED, is_listed
from metricstore import nats as metric_nats
from streams.events import bounds

TARGET = Path(__file__).resolve().parent.parent / "configs" / "README.md"

HEADER = """# Configuration reference

ccstream reads `config.json` (cc-backend's format: `main`, `archive`, `auth`, `nats`, `metric-store`,
`metric-store-external`, `cron`, `ui`, `ui-file`) plus its own sections (`event-log`, `intake`).
Unknown keys and wrong types are refused at start with the file and the dotted key named.
Every key acts. The keys marked **not supported yet** are cc-backend's and accepted at their default (cc-backend's
config files often spell defaults out); any other value is refused at start, naming the key and what to do.
Secrets come from the environment or `.env`: `JWT_PUBLIC_KEY`, `JWT_PRIVATE_KEY` (Ed25519, base64 as
cc-backend writes them), `SESSION_KEY`.

This file is generated from the settings models: `python -m api.configdoc`.

| key | default | meaning |
|---|---|---|
"""


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType, list, tuple, dict):
        return [m for arg in get_args(annotation) for m in _nested_models(arg)]
    return []


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        return f"`{field.default!r}`" if field.default is not None else "unset"
    if field.default_factory is not None:
        value = field.default_factory()
        return "(section)" if isinstance(value, BaseModel) else f"`{value!r}`"
    return "required"


def _marked(key: str, description: str) -> str:
    if key in NOT_SUPPORTED:
        return f"**Not supported yet** (refused unless at its default: {NOT_SUPPORTED[key]}). {description}"
    if is_listed(key):
        return f"**Not supported yet** (see its section). {description}"
    return description


def rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    """One table row per setting, nested sections after their parent."""
    out: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        out.append(f"| `{key}` | {_default(field)} | {_marked(key, field.description or '')} |")
        for nested in _nested_models(field.annotation):
            out.extend(rows(nested, key + "."))
    return out


#: Modules whose limit constants (`*_MAX`, `*_MIN`, `MAX_*`) are part of the storage and protocol contract: every
#: such constant of theirs is listed, with the comment it is declared with.
LIMIT_MODULES: tuple[ModuleType, ...] = (bounds, metric_nats, graphql_limits, graphql_mutations, passwords)

LIMITS_HEADER = """
## Limits

Every request body and every field is bounded. A body over its limit is refused with 413 before it is
read (by its Content-Length, or as a chunked body streams in), naming the limit and the setting that
raises it; a field over its limit is refused with 400 naming the field and the limit. Nothing of a
refused request is stored.

### Request bodies (settings)

| setting | default (bytes) | applies to |
|---|---|---|
"""

CONSTANTS_HEADER = """
### Fields, messages and queries (fixed: part of the storage contract)

Names are cc-backend's VARCHAR(255) columns, integers what its columns hold; these do not change per site.

| limit | value | meaning | declared in |
|---|---|---|---|
"""


def _documented_constants(module: ModuleType) -> list[tuple[str, Any, str]]:
    """(name, value, comment) of the module's limit constants, commented `#:` above or docstring'd below.

    A constant without a comment of its own shares the one of the constants declared with it (no blank
    line between): `INT64_MAX` under `INT64_MIN`'s.
    """
    source = inspect.getsource(module)
    lines = source.splitlines()
    body = ast.parse(source).body
    found: list[tuple[str, Any, str]] = []
    shared = ""
    for index, stmt in enumerate(body):
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            shared = ""
            continue
        name = stmt.targets[0].id
        comment: list[str] = []
        row = stmt.lineno - 2
        while row >= 0 and lines[row].startswith("#:"):
            comment.insert(0, lines[row][2:].strip())
            row -= 1
        following = body[index + 1] if index + 1 < len(body) else None
        if not comment and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant) \
                and isinstance(following.value.value, str):
            comment = [following.value.value.strip()]
        if comment:
            shared = " ".join(comment)
        elif stmt.lineno >= 2 and not lines[stmt.lineno - 2].strip():
            shared = ""
        value = getattr(module, name, None)
        if (name.endswith(("_MAX", "_MIN")) or name.startswith("MAX_") or "_MAX_" in name) and isinstance(value, int):
            found.append((name, value, shared))
    return found


def _amount(value: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size and value % size == 0:
            return f"{value:,} ({value // size} {unit})"
    return f"{value:,}"


def limit_rows() -> list[str]:
    """The Limits section: body-limit settings with their defaults, then the fixed limits."""
    defaults = Settings()
    out = [f"| `{key}` | {_amount(int(setting_value(defaults, key)))} | {where} |"
           for key, where in BODY_LIMIT_SETTINGS.items()]
    out.append(CONSTANTS_HEADER.rstrip("\n"))
    for module in LIMIT_MODULES:
        for name, value, comment in _documented_constants(module):
            escaped = comment.replace("|", "\\|")
            out.append(f"| `{name}` | {_amount(value)} | {escaped} | `{module.__name__}` |")
    return out


def render() -> str:
    """The whole reference document."""
    return HEADER + "\n".join(rows(Settings)) + "\n" + LIMITS_HEADER + "\n".join(limit_rows()) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print("configs/README.md is out of date: run `python -m api.configdoc`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
