"""Renders the reference of every config.json setting from the settings models (configs/README.md)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from api.config import Settings
from api.unsupported import NOT_SUPPORTED, is_listed

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


def render() -> str:
    """The whole reference document."""
    return HEADER + "\n".join(rows(Settings)) + "\n"


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
