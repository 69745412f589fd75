"""Which settings keys the product reads, judged from its source: the checker behind "every key acts".

A key counts as read when its field's Python name is used by product code outside the settings modules:
as an attribute (`settings.main.db_config`), or as a string handed to a lookup by name (`getattr(s, "region")`,
`hasattr`, or a `get("access_key")` as in the archive factory, which takes a model or a raw mapping); a
string anywhere else (a column name, a log message) does not count. Properties and methods
of the settings models count through their use, by the exact `self.…` paths they read: `snapshot_seconds`
reads `checkpoints.interval` (not every key named `interval`) only if something in the product reads
`snapshot_seconds`. A nested key also needs its section to be read, so a
name shared with something unrelated (`trigger`, `path`) does not make a key of an unread section look read.
Validators in the settings modules do not count: checking a value is not acting on it.
"""

from __future__ import annotations

import ast
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

REPO = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("api", "streams", "projections", "archive", "metricstore", "replay")
SETTINGS_MODULES = ("api/config.py", "streams/settings.py", "metricstore/settings.py")


@dataclass(frozen=True)
class Key:
    """One setting: its dotted config.json spelling, Python names from the top, the models holding each name."""

    dotted: str
    path: tuple[str, ...]
    #: owners[i]: the names of the classes (with their bases) of the model holding path[i].
    owners: tuple[tuple[str, ...], ...]
    parent: str | None

    @property
    def name(self) -> str:
        return self.path[-1]


def _nested(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType, list, tuple, dict):
        return [m for arg in get_args(annotation) for m in _nested(arg)]
    return []


def keys(model: type[BaseModel], prefix: str = "", parent: Key | None = None) -> list[Key]:
    """Every key of `model` and its nested sections (through optionals, lists, tuples and dicts)."""
    out: list[Key] = []
    classes = tuple(c.__name__ for c in model.__mro__)
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{field.alias or name}"
        key = Key(dotted, (*parent.path, name) if parent else (name,),
                  (*parent.owners, classes) if parent else (classes,), parent.dotted if parent else None)
        out.append(key)
        for nested in _nested(field.annotation):
            out.extend(keys(nested, dotted + ".", key))
    return out


#: Calls whose string arguments name an attribute or key to look up.
LOOKUPS = frozenset({"getattr", "hasattr", "get"})


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def names_used(tree: ast.AST) -> set[str]:
    """Attribute names, and string constants passed to lookups by name (LOOKUPS), anywhere in `tree`."""
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.Call) and _callee(node) in LOOKUPS:
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    used.add(arg.value)
    return used


def _self_chains(fn: ast.AST) -> set[tuple[str, ...]]:
    """`self.a.b.c` in a method body as ("a", "b", "c"); only the longest chain of each expression."""
    chains: set[tuple[str, ...]] = set()
    inner: set[int] = set()
    for node in ast.walk(fn):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        parts: list[str] = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            parts.append(current.attr)
            inner.add(id(current.value))
            current = current.value
        if isinstance(current, ast.Name) and current.id == "self":
            chains.add(tuple(reversed(parts)))
    return chains


#: class name → member (method or property) name → the `self.…` chains its body reads.
Members = dict[str, dict[str, set[tuple[str, ...]]]]


def members(tree: ast.AST) -> Members:
    """The `self.…` chains each method of each class of a settings module reads."""
    found: Members = {}
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for fn in cls.body:
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                found.setdefault(cls.name, {}).setdefault(fn.name, set()).update(_self_chains(fn))
    return found


@dataclass(frozen=True)
class Reads:
    """What the product reads: bare names, and the `self.…` chains of the settings members it uses."""

    names: frozenset[str]
    chains: dict[str, frozenset[tuple[str, ...]]]

    def chain_reads(self, classes: tuple[str, ...], relative: tuple[str, ...]) -> bool:
        """Whether a used member of one of `classes` reads `relative` (or something below it)."""
        return any(chain[:len(relative)] == relative for c in classes for chain in self.chains.get(c, ()))


def _sources(root: Path, packages: Iterable[str], exclude: Iterable[str]) -> Iterable[Path]:
    skip = {root / e for e in exclude}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if path not in skip:
                yield path


def resolve(product: set[str], settings_members: Members) -> Reads:
    """The chains of the members the product uses, closed over members using members (`self.other`)."""
    chains: dict[str, frozenset[tuple[str, ...]]] = {}
    for cls, by_member in settings_members.items():
        used = {m for m in by_member if m in product}
        changed = True
        while changed:
            more = {chain[0] for m in used for chain in by_member[m] if chain[0] in by_member} - used
            used |= more
            changed = bool(more)
        chains[cls] = frozenset(chain for m in used for chain in by_member[m])
    return Reads(frozenset(product), chains)


def unread(all_keys: list[Key], reads: Reads) -> list[str]:
    """Dotted keys the product does not read (see the module docstring)."""
    by_dotted = {k.dotted: k for k in all_keys}

    def lineage(key: Key) -> list[Key]:
        return ([] if key.parent is None else lineage(by_dotted[key.parent])) + [key]

    def is_read(key: Key) -> bool:
        above = lineage(key)[:-1]
        for depth in range(len(key.path)):  # through a used member of the model at this depth
            if reads.chain_reads(key.owners[depth], key.path[depth:]) and (depth == 0 or is_read(above[depth - 1])):
                return True
        if key.name not in reads.names:
            return False
        return key.parent is None or is_read(by_dotted[key.parent])

    return [k.dotted for k in all_keys if not is_read(k)]


def product_reads(root: Path = REPO, packages: Iterable[str] = PRODUCT_PACKAGES,
                  settings_modules: Iterable[str] = SETTINGS_MODULES) -> Reads:
    """Everything the product code under `root` reads (see the module docstring)."""
    settings_modules = tuple(settings_modules)
    used: set[str] = set()
    for path in _sources(root, packages, settings_modules):
        used |= names_used(ast.parse(path.read_text(), str(path)))
    settings_members: Members = {}
    for module in settings_modules:
        for cls, by_member in members(ast.parse((root / module).read_text())).items():
            for name, chains in by_member.items():
                settings_members.setdefault(cls, {}).setdefault(name, set()).update(chains)
    return resolve(used, settings_members)
