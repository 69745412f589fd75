"""Operations across backends for retention: copy or move a job from one archive to another."""

from __future__ import annotations

from archive.backends.protocol import ArchiveBackend
from archive.paths import JobKey


def transfer_job(source: ArchiveBackend, target: ArchiveBackend, key: JobKey, *, move: bool = False) -> str:
    """Copy one job (meta and data) into `target`; with `move`, delete it from `source` afterwards.

    The target entry is complete before the source entry goes, so a crash in between leaves the job
    in both archives, never in neither; running the transfer again finishes it.
    """
    meta = source.load_meta(*key)
    data = source.load_data(*key)
    location = target.store_job(meta, data)
    if move:
        source.delete_job(*key)
    return location
