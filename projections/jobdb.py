"""The job database projection: cc-backend's job.db (jobs, tags, users) kept up to date from the log."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from projections import jobs, nodes, schema, tags, users
from projections.db import create_schema
from projections.handlers import HandlerTable
from streams.events import Event

#: One table from event type to handler for the whole job database.
HANDLERS: HandlerTable = {**jobs.HANDLERS, **tags.HANDLERS, **users.HANDLERS, **nodes.HANDLERS}


class StaleBatch(RuntimeError):
    """A batch read against a checkpoint the database no longer has; the runner re-reads and retries."""


class JobDatabaseProjection:
    """Applies batches of events to the job database and stores the checkpoint in the same commit."""

    name = "jobdb"

    def __init__(self, engine: Engine, handlers: HandlerTable = HANDLERS) -> None:
        self.engine = engine
        self.handlers = handlers
        create_schema(engine)

    def checkpoint(self) -> int:
        with self.engine.connect() as conn:
            return self._stored_checkpoint(conn)

    def _stored_checkpoint(self, conn: Connection) -> int:
        value = conn.execute(
            select(schema.checkpoint.c.position).where(schema.checkpoint.c.name == self.name)
        ).scalar()
        return int(value or 0)

    def apply(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with self.engine.begin() as conn:
            # The stored checkpoint, read under the write lock, decides: `replay rebuild` may have swapped
            # the file's content between the runner's read of a batch and this commit.
            stored = self._stored_checkpoint(conn)
            events = [e for e in events if e.position is None or e.position > stored]
            if not events:
                return
            first = events[0].position
            if first is not None and first != stored + 1:
                raise StaleBatch(f"{self.name} stands at position {stored}; a batch from {first} would leave a gap")
            for event in events:
                handler = self.handlers.get(event.type)
                if handler is not None:
                    handler(conn, event)
            position = events[-1].position or 0
            stmt = sqlite_insert(schema.checkpoint).values(name=self.name, position=position)
            conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"position": position}))
