"""Scheduled archive maintenance: compression of old job data and retention (delete, copy, move) of old jobs."""

from archive.maintenance.compression import DEFAULT_COMPRESS_DAYS, compress_archive, compression_days
from archive.maintenance.parquet import job_to_row, read_jobs, row_to_job, rows_to_parquet
from archive.maintenance.policy import PolicyError, RetentionPolicy
from archive.maintenance.report import MaintenanceReport
from archive.maintenance.retention import TaggedJobs, deletion_event_id, retire_jobs

__all__ = [
    "DEFAULT_COMPRESS_DAYS",
    "MaintenanceReport",
    "PolicyError",
    "RetentionPolicy",
    "TaggedJobs",
    "compress_archive",
    "compression_days",
    "deletion_event_id",
    "job_to_row",
    "read_jobs",
    "retire_jobs",
    "row_to_job",
    "rows_to_parquet",
]
