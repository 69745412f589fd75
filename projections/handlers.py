"""Shared types of read-model handlers."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import Connection

from streams.events import Event

#: A handler applies one event to its read model inside the caller's transaction.
Handler = Callable[[Connection, Event], None]
HandlerTable = Mapping[str, Handler]
