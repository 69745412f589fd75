"""Jobs imported from another archive answer their metric data over REST (they used to answer 500)."""

from __future__ import annotations

from pathlib import Path

import orjson

from api.cli import main
from tests.api.conftest import AppFactory, Tokens
from tests.support.specs import find_specs


def test_jobs_imported_from_another_archive_serve_their_metrics(
    make_client: AppFactory, tokens: Tokens, tmp_path: Path, archive_root: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_bytes(orjson.dumps({  # the files make_client's app uses
        "main": {"db": str(tmp_path / "job.db")},
        "archive": {"kind": "file", "path": str(archive_root)},
        "event-log": {"kind": "sqlite", "path": str(tmp_path / "events.db")},
    }))
    other = find_specs() / "archive"  # not the configured archive
    assert main(["--config", str(config), "--env", str(tmp_path / ".env"), "import-archive", str(other)]) == 0

    http = make_client()
    listed = http.get("/api/jobs/?items-per-page=10", headers=tokens.headers())
    assert listed.status_code == 200, listed.text
    jobs = listed.json()["jobs"]
    assert sorted(j["jobId"] for j in jobs) == [1403244, 1404397]
    for job in jobs:
        response = http.get(f"/api/jobs/{job['id']}?all-metrics=true", headers=tokens.headers())
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert {d["name"] for d in data} >= {"cpu_load", "flops_any", "mem_bw"}
        assert all(d["metric"]["series"] for d in data)
