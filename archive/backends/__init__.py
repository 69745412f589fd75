"""Job archive backends (file, S3, SQLite) behind one port, `ArchiveBackend`, and a factory."""

from archive.backends.factory import open_archive, open_location
from archive.backends.file import FileArchive
from archive.backends.ops import transfer_job
from archive.backends.protocol import ArchiveBackend, ArchiveEntry, ArchiveError, CorruptEntry, JobNotFound
from archive.backends.sqlite import SQLiteArchive
from archive.paths import InvalidName, JobKey

__all__ = [
    "ArchiveBackend",
    "ArchiveEntry",
    "ArchiveError",
    "CorruptEntry",
    "FileArchive",
    "InvalidName",
    "JobKey",
    "JobNotFound",
    "SQLiteArchive",
    "open_archive",
    "open_location",
    "transfer_job",
]
