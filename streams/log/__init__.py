"""The event log: the only source of truth. Embedded SQLite by default, in-memory for tests."""

from streams.log.memory import MemoryEventLog
from streams.log.protocol import AppendResult, EventLog, LogClosed, StoredEvent
from streams.log.sqlite import SQLiteEventLog

__all__ = ["AppendResult", "EventLog", "LogClosed", "MemoryEventLog", "SQLiteEventLog", "StoredEvent"]
