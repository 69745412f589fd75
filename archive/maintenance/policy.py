"""`archive.retention` as a checked value: cc-backend's keys, its defaults, and what each policy needs."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

POLICIES = ("none", "delete", "copy", "move")
FORMATS = ("json", "parquet")
TARGET_KINDS = ("file", "s3")
#: cc-backend splits Parquet files at 512 MB when `max-file-size-mb` is not set.
DEFAULT_MAX_FILE_SIZE_MB = 512
#: Hour (local time) of the daily run of each policy, as cc-backend's task manager schedules them.
POLICY_HOURS = {"delete": 3, "copy": 4, "move": 5}


class PolicyError(ValueError):
    """A retention setting that cannot work (unknown policy, missing target); the message names the key."""


@dataclass(frozen=True)
class RetentionPolicy:
    """The `archive.retention` section; field names are the snake_case of cc-backend's keys."""

    policy: str = "none"
    format: str = "json"
    include_db: bool = True
    omit_tagged: bool = False
    age: int = 7
    location: str = ""
    target_kind: str = "file"
    target_path: str = ""
    target_endpoint: str = ""
    target_bucket: str = ""
    target_access_key: str = ""
    target_secret_key: str = ""
    target_region: str = ""
    target_use_path_style: bool = False
    max_file_size_mb: int = 0

    @classmethod
    def from_settings(cls, settings: Any) -> RetentionPolicy:
        """From `api.config.RetentionSettings` (or anything with those attributes); None means policy none."""
        if settings is None:
            return cls()
        names = [f.name for f in fields(cls)]
        return cls(**{n: getattr(settings, n) for n in names if hasattr(settings, n)}).checked()

    @property
    def enabled(self) -> bool:
        return self.policy != "none"

    @property
    def writes_target(self) -> bool:
        """copy and move write the jobs somewhere before (for move) deleting them."""
        return self.policy in ("copy", "move")

    @property
    def removes_jobs(self) -> bool:
        """delete and move remove archive entries (and with include-db, database rows)."""
        return self.policy in ("delete", "move")

    @property
    def path(self) -> str:
        """The target folder: `target-path`, else the older `location` key (cc-backend's example config)."""
        return self.target_path or self.location

    @property
    def max_file_bytes(self) -> int:
        mb = self.max_file_size_mb if self.max_file_size_mb > 0 else DEFAULT_MAX_FILE_SIZE_MB
        return mb * 1024 * 1024

    @property
    def hour(self) -> int:
        """Hour of the nightly run."""
        return POLICY_HOURS.get(self.policy, 3)

    def describe(self) -> str:
        """e.g. `retention move (parquet, older than 365 days)`."""
        what = f"{self.format} to {self.target_kind}, " if self.writes_target else ""
        return f"retention {self.policy} ({what}older than {self.age} days)"

    def checked(self) -> RetentionPolicy:
        """Self when usable; PolicyError naming the key otherwise (checked at start, not at 3 a.m.)."""
        if self.policy not in POLICIES:
            raise PolicyError(f"archive.retention.policy: {self.policy!r} is not one of {', '.join(POLICIES)}")
        if self.format not in FORMATS:
            raise PolicyError(f"archive.retention.format: {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.age < 0:
            raise PolicyError(f"archive.retention.age: must be >= 0 days, got {self.age}")
        if not self.writes_target:
            return self
        if self.target_kind not in TARGET_KINDS:
            raise PolicyError(f"archive.retention.target-kind: {self.target_kind!r} is not file or s3")
        if self.target_kind == "file" and not self.path:
            raise PolicyError(f"archive.retention: policy {self.policy} needs target-path (or location)")
        if self.target_kind == "s3" and not self.target_bucket:
            raise PolicyError(f"archive.retention: policy {self.policy} to s3 needs target-bucket")
        return self
