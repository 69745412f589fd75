"""The read models replay knows: name → database file, bulk loader, and how its tables dump.

A read model owns its whole SQLite file (a rebuild replaces every page of it). Adding a read model
means adding an entry here; rebuild, verify and time travel then work for it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from api.config import Settings
from replay.dump import VOLATILE, TableSpec
from replay.pages import Page
from streams.log import StoredEvent


class BulkLoader(Protocol):
    """Fills a database file from stored events; `finish` stores them with their checkpoint."""

    name: str

    def checkpoint(self) -> int:
        """Position of the last event stored in the file."""
        ...

    def load(self, records: Page | Sequence[StoredEvent]) -> None:
        """Apply the events (what is applied may stay in memory until `finish`)."""
        ...

    def finish(self) -> None:
        """Store everything loaded and its last position, then build what was deferred (indexes)."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


@dataclass(frozen=True)
class ReadModel:
    """Everything replay needs to rebuild, check and compare one read model."""

    name: str
    help: str
    db_path: Callable[[Settings], Path]
    loader: Callable[[Path, int | None], BulkLoader]
    tables: Mapping[str, TableSpec]


_JOB_JSON = frozenset({"meta_data", "resources", "energy_footprint", "footprint"})

#: The job database: jobs by cc-backend's identity, link tables by the natural keys they link.
JOBDB_TABLES: Mapping[str, TableSpec] = {
    "schema_migrations": TableSpec(key=("version",)),
    "job": TableSpec(key=("job_id", "cluster", "start_time"), json=_JOB_JSON),
    "tag": TableSpec(key=("tag_type", "tag_name", "tag_scope")),
    "jobtag": TableSpec(
        key=("job_cluster", "job_job_id", "job_start_time", "tag_type", "tag_name", "tag_scope", "job_id", "tag_id"),
        query=(
            "SELECT j.cluster AS job_cluster, j.job_id AS job_job_id, j.start_time AS job_start_time,"
            " t.tag_type, t.tag_name, t.tag_scope, jt.job_id, jt.tag_id"
            " FROM jobtag jt LEFT JOIN job j ON j.id = jt.job_id LEFT JOIN tag t ON t.id = jt.tag_id"
        ),
    ),
    "hpc_user": TableSpec(key=("username",), json=frozenset({"roles", "projects"})),
    "configuration": TableSpec(key=("username", "confkey"), json=frozenset({"value"})),
    "node": TableSpec(key=("cluster", "hostname"), json=frozenset({"meta_data"})),
    "node_state": TableSpec(
        key=("node_cluster", "node_hostname", "time_stamp", "id"),
        json=frozenset({"health_metrics"}),
        query=(
            "SELECT n.cluster AS node_cluster, n.hostname AS node_hostname, s.*"
            " FROM node_state s LEFT JOIN node n ON n.id = s.node_id"
        ),
    ),
    "ccstream_checkpoint": TableSpec(key=("name",)),
    "ccstream_parked_stop": TableSpec(key=("event_id",)),
    "ccstream_job_statistics": TableSpec(key=("cluster", "job_id", "start_time"), json=frozenset({"statistics"})),
    # What the projection skipped: a rebuild quarantines the same events, after its own number of tries.
    "ccstream_quarantine": TableSpec(key=("agent", "position"), exclude=VOLATILE | {"attempts", "quarantined_at"}),
}

def _job_database_loader(path: Path, page_size: int | None) -> BulkLoader:
    """The job database's bulk loader, imported on use: it needs SQLAlchemy, which the commands that
    only list the read models (every `ccstream` start builds its argument parser) should not load."""
    from replay.bulk import JobDatabaseBulkLoader

    return JobDatabaseBulkLoader(path, page_size=page_size)


READ_MODELS: dict[str, ReadModel] = {
    "jobdb": ReadModel(
        name="jobdb",
        help="the job database (jobs, tags, users, nodes) at main.db",
        db_path=lambda settings: Path(settings.main.db),
        loader=_job_database_loader,
        tables=JOBDB_TABLES,
    ),
}


def select_models(names: Iterable[str]) -> list[ReadModel]:
    """The named read models (all when none are named); unknown names raise KeyError naming them."""
    wanted = list(names) or list(READ_MODELS)
    unknown = [n for n in wanted if n not in READ_MODELS]
    if unknown:
        raise KeyError(f"unknown read model(s) {', '.join(unknown)}; known: {', '.join(READ_MODELS)}")
    return [READ_MODELS[n] for n in dict.fromkeys(wanted)]
