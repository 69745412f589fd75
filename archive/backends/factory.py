"""Opening the archive a config names: `archive.kind` = file | s3 | sqlite, as in cc-backend."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from archive.backends.file import FileArchive
from archive.backends.protocol import ArchiveBackend, ArchiveError
from archive.backends.sqlite import SQLiteArchive

KINDS = ("file", "s3", "sqlite")


def _setting(settings: Any, name: str, default: Any = "") -> Any:
    """A setting from a pydantic ArchiveSettings (snake_case attributes) or a config.json mapping (dashes)."""
    if isinstance(settings, Mapping):
        for key in (name.replace("_", "-"), name, _camel(name)):
            if key in settings:
                return settings[key]
        return default
    return getattr(settings, name, default)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def open_archive(settings: Any = None, **overrides: Any) -> ArchiveBackend:
    """The backend an `archive` config section describes; keyword arguments override single settings.

    Accepts `api.config.ArchiveSettings`, the raw `archive` mapping of a config.json, or only keywords
    (`open_archive(kind="file", path="./var/job-archive")`). Nothing is contacted until first use,
    except the SQLite file, which is created with its schema.
    """
    def get(name: str, default: Any = "") -> Any:
        return overrides[name] if name in overrides else _setting(settings, name, default)

    kind = get("kind", "file")
    if kind == "file":
        return FileArchive(Path(get("path", "./var/job-archive")))
    if kind == "sqlite":
        path = get("db_path") or get("path")
        if not path:
            raise ArchiveError("archive kind 'sqlite' needs archive.db-path")
        return SQLiteArchive(Path(path))
    if kind == "s3":
        from archive.backends.s3 import S3Archive  # boto3 is heavy: load it only for S3 archives

        return S3Archive(
            get("bucket"),
            prefix=get("prefix"),
            endpoint=get("endpoint"),
            region=get("region"),
            access_key=get("access_key"),
            secret_key=get("secret_key"),
            use_path_style=bool(get("use_path_style", False)),
        )
    raise ArchiveError(f"unknown archive kind {kind!r}; expected one of {', '.join(KINDS)}")


def open_location(location: str, settings: Any = None) -> ArchiveBackend:
    """An archive from a command-line location: a directory, `s3://bucket/prefix`, or a `.db`/`sqlite:` file.

    S3 credentials, endpoint and region come from the configured archive section.
    """
    if location.startswith("s3://"):
        url = urlparse(location)
        if not url.netloc:
            raise ArchiveError(f"{location}: expected s3://<bucket>[/<prefix>]")
        return open_archive(settings, kind="s3", bucket=url.netloc, prefix=url.path.strip("/"))
    if location.startswith("sqlite:"):
        return open_archive(settings, kind="sqlite", db_path=location.removeprefix("sqlite:"))
    path = Path(location)
    if path.is_file():
        return open_archive(settings, kind="sqlite", db_path=str(path))
    if not path.is_dir():
        raise ArchiveError(f"{location}: no such archive directory")
    return open_archive(settings, kind="file", path=str(path))
