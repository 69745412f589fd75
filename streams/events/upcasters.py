"""Upcasters: small pure functions that lift an old payload version to the next one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.events.payloads import CURRENT_VERSION, UnknownEventType

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

#: (type, from_version) -> function producing the payload of from_version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function lifting `type` from `from_version` to `from_version + 1`."""

    def register(fn: Upcaster) -> Upcaster:
        UPCASTERS[(type, from_version)] = fn
        return fn

    return register


def upcast(type: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Lift a stored payload to the current version of its type, step by step."""
    current = CURRENT_VERSION.get(type)
    if current is None:
        raise UnknownEventType(f"unknown event type {type!r}")
    while version < current:
        step = UPCASTERS.get((type, version))
        if step is None:
            raise UnknownEventType(f"no upcaster for {type!r} version {version}")
        data = step(data)
        version += 1
    if version > current:
        raise UnknownEventType(f"{type!r} version {version} is newer than this build knows ({current})")
    return version, data
