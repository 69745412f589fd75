"""`main.nodestate-retention` inside the server: old node-state rows deleted, or moved to Parquet first.

The app runs over real SQLite files; reports are events with chosen time stamps and the task is run
with a chosen `now`. Targets are a real folder and a real S3 endpoint (moto's server).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.bootstrap import Services
from api.config import Settings
from api.nodestate_retention import SCHEMA, NodeStateRetentionTask, RetentionSettingsError
from api.scheduler import check_job_tasks
from replay.registry import READ_MODELS
from replay.verify import verify
from streams.events import new_event
from tests.api.conftest import AppFactory
from tests.support.s3server import S3Server, s3_server
from tests.support.wait import eventually

NOW = 1_700_100_000
HOUR = 3600
HOSTS = ("f0101", "f0102")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def services(http: TestClient) -> Services:
    value: Services = http.app.state.services  # type: ignore[attr-defined]
    return value


def report(ts: int, state: str = "idle") -> Any:
    nodes = [{"hostname": h, "subCluster": "main", "states": [state.upper()], "nodeState": state,
              "healthState": "full", "healthMetrics": {"missing": [], "degraded": []}, "cpusAllocated": 2,
              "memoryAllocated": 64, "gpusAllocated": 0, "jobsRunning": 1} for h in HOSTS]
    return new_event("node.states_reported", "nodes/fritz", {"cluster": "fritz", "timeStamp": ts, "nodes": nodes})


def fill(http: TestClient) -> None:
    """Reports 30, 25, 10 and 1 hour(s) before NOW, two nodes each, applied to the job table."""
    s = services(http)
    s.log.append([report(NOW - hours * HOUR, "allocated" if hours > 24 else "idle") for hours in (30, 25, 10, 1)])
    eventually(lambda: s.runner.position >= s.log.head(), what="the node states are applied")


def time_stamps(http: TestClient) -> list[int]:
    with services(http).reader.connect() as conn:
        return sorted(r[0] for r in conn.execute(text("SELECT time_stamp FROM node_state")))


def task(http: TestClient) -> NodeStateRetentionTask:
    s = services(http)
    assert s.settings.main.nodestate_retention is not None
    return NodeStateRetentionTask(s.settings.main.nodestate_retention, s.log, s.reader, s.runner.wait_for)


def applied(http: TestClient) -> None:
    s = services(http)
    eventually(lambda: s.runner.position >= s.log.head(), what="the retirement is applied")


def assert_rebuild_equals_live(http: TestClient) -> None:
    s = services(http)
    result = verify(s.log, READ_MODELS["jobdb"], Path(s.settings.main.db))
    assert result.ok, [d.describe() for d in result.comparison.differences]


def test_delete_removes_rows_older_than_age_and_a_rebuild_does_not_bring_them_back(
        make_client: AppFactory) -> None:
    http = make_client({"main": {"nodestate-retention": {"policy": "delete", "age": 24}}})
    fill(http)
    data = task(http).run(NOW)
    assert data == {"before": NOW - 24 * HOUR, "policy": "delete", "rows": 4, "location": []}
    applied(http)
    assert time_stamps(http) == [NOW - 10 * HOUR] * 2 + [NOW - HOUR] * 2
    assert task(http).run(NOW) is None  # nothing older left: no event
    assert_rebuild_equals_live(http)


def test_move_writes_parquet_to_a_folder_before_the_rows_go(make_client: AppFactory, tmp_path: Path) -> None:
    target = tmp_path / "nodestate-archive"
    http = make_client({"main": {"nodestate-retention": {
        "policy": "move", "age": 20, "target-kind": "file", "target-path": str(target)}}})
    fill(http)
    data = task(http).run(NOW)
    assert data is not None and data["rows"] == 4 and data["policy"] == "move"
    [name] = data["location"]
    assert name.startswith("cc-nodestate-") and name.endswith(".parquet")
    table = pq.read_table(target / name)
    assert table.schema == SCHEMA
    rows = table.to_pylist()
    assert [(r["hostname"], r["time_stamp"], r["node_state"]) for r in rows] == [
        ("f0101", NOW - 30 * HOUR, "allocated"), ("f0101", NOW - 25 * HOUR, "allocated"),
        ("f0102", NOW - 30 * HOUR, "allocated"), ("f0102", NOW - 25 * HOUR, "allocated")]
    assert rows[0]["cluster"] == "fritz" and rows[0]["subcluster"] == "main" and rows[0]["cpus_allocated"] == 2
    assert rows[0]["health_metrics"] == '{"missing":[],"degraded":[]}'
    assert not [p for p in target.iterdir() if p.name != name]  # no temp file left
    applied(http)
    assert time_stamps(http) == [NOW - 10 * HOUR] * 2 + [NOW - HOUR] * 2
    assert_rebuild_equals_live(http)


def test_move_splits_files_at_max_file_size(make_client: AppFactory, tmp_path: Path) -> None:
    target = tmp_path / "split"
    http = make_client({"main": {"nodestate-retention": {
        "policy": "move", "age": 1, "target-kind": "file", "target-path": str(target), "max-file-size-mb": 1}}})
    s = services(http)
    s.log.append([report(NOW - 2 * HOUR - n) for n in range(4000)])  # 8000 rows, ~1.3 MB by the estimate
    applied(http)
    data = task(http).run(NOW)
    assert data is not None and data["rows"] == 8000 and len(data["location"]) == 2
    assert sum(pq.read_table(target / n).num_rows for n in data["location"]) == 8000
    applied(http)
    assert time_stamps(http) == []


def test_move_to_s3(make_client: AppFactory, s3: S3Server) -> None:
    s3_bucket = s3.create_bucket()
    http = make_client({"main": {"nodestate-retention": {
        "policy": "move", "age": 24, "target-kind": "s3", "target-endpoint": s3.endpoint,
        "target-bucket": s3_bucket, "target-access-key": s3.access_key, "target-secret-key": s3.secret_key,
        "target-region": s3.region, "target-use-path-style": True}}})
    fill(http)
    data = task(http).run(NOW)
    assert data is not None
    [name] = data["location"]
    body = s3.client().get_object(Bucket=s3_bucket, Key=name)["Body"].read()
    assert pq.read_table(io.BytesIO(body)).num_rows == 4
    applied(http)
    assert time_stamps(http) == [NOW - 10 * HOUR] * 2 + [NOW - HOUR] * 2


def test_a_failed_move_leaves_the_rows(make_client: AppFactory, s3: S3Server) -> None:
    http = make_client({"main": {"nodestate-retention": {
        "policy": "move", "age": 24, "target-kind": "s3", "target-endpoint": s3.endpoint,
        "target-bucket": "no-such-bucket", "target-access-key": s3.access_key, "target-secret-key": s3.secret_key,
        "target-region": s3.region, "target-use-path-style": True}}})
    fill(http)
    head = services(http).log.head()
    with pytest.raises(Exception, match="no-such-bucket"):
        task(http).run(NOW)
    assert services(http).log.head() == head
    assert len(time_stamps(http)) == 8


@pytest.mark.parametrize(("section", "message"), [
    ({"policy": "archive"}, "main.nodestate-retention.policy: 'archive' is not delete or move"),
    ({"policy": "delete", "age": 0}, "main.nodestate-retention.age: must be > 0 hours"),
    ({"policy": "move"}, "policy move to file needs target-path"),
    ({"policy": "move", "target-kind": "s3"}, "policy move to s3 needs target-bucket"),
    ({"policy": "move", "target-kind": "ftp"}, "target-kind: 'ftp' is not file or s3"),
])
def test_a_section_that_cannot_work_is_refused_at_start(section: dict[str, Any], message: str) -> None:
    settings = Settings.model_validate({"main": {"nodestate-retention": section}})
    with pytest.raises(RetentionSettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_job_tasks(settings)
