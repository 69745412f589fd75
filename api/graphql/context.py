"""What every resolver of one GraphQL operation shares: the viewer, one read connection, the services."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, RowMapping, and_, select

from api.auth import Principal
from api.graphql.viewer import tag_visibility
from projections import schema

if TYPE_CHECKING:
    from api.bootstrap import Services

tag, jobtag, hpc_user = schema.tag, schema.jobtag, schema.hpc_user


@dataclass
class Context:
    """Per operation: one connection (one consistent view for all of its fields) and its look-up caches."""

    viewer: Principal
    services: Services
    now: float
    conn: Connection | None = None
    _tags: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    _users: dict[str, RowMapping | None] = field(default_factory=dict)

    @property
    def db(self) -> Connection:
        if self.conn is None:
            raise RuntimeError("no read connection: queries run in the read pool")
        return self.conn

    def prefetch_tags(self, job_ids: Sequence[int]) -> None:
        """The visible tags of a page of jobs in one query (a job list would otherwise ask once per row)."""
        missing = [i for i in job_ids if i not in self._tags]
        if not missing:
            return
        for job_id in missing:
            self._tags[job_id] = []
        stmt = (select(jobtag.c.job_id, tag.c.id, tag.c.tag_type, tag.c.tag_name, tag.c.tag_scope)
                .join(tag, tag.c.id == jobtag.c.tag_id)
                .where(and_(jobtag.c.job_id.in_(missing), tag_visibility(self.viewer)))
                .order_by(jobtag.c.job_id, tag.c.id))
        for row in self.db.execute(stmt):
            self._tags[row.job_id].append(tag_object(row))

    def tags_of(self, job_id: int) -> list[dict[str, Any]]:
        self.prefetch_tags([job_id])
        return self._tags[job_id]

    def user(self, username: str) -> RowMapping | None:
        if username not in self._users:
            self._users[username] = self.db.execute(
                select(hpc_user).where(hpc_user.c.username == username)).mappings().first()
        return self._users[username]


def tag_object(row: Any) -> dict[str, Any]:
    return {"id": row.id, "type": row.tag_type, "name": row.tag_name, "scope": row.tag_scope}
