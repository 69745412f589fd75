"""Dead letters through their two doors: the admin REST endpoints and `ccstream rejected list|retry`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from api.cli import main
from streams.clusters import ClusterRegistry
from streams.deadletter import DeadLetterStore
from streams.ingest.intake import JobIntake
from streams.ingest.nats.messages import Delivery
from streams.ingest.nats.processor import NatsProcessor
from streams.ingest.nodestate import NodeStateIntake
from streams.log import SQLiteEventLog
from tests.api.conftest import AppFactory, Tokens, assert_error
from tests.ingest.conftest import START, job_line, start_body
from tests.support.wait import eventually

STOP_OF_7 = job_line("stop_job", {"jobId": 7, "stopTime": START + 50}, 1)


def _reject(db: Path, events: Path, clusters: ClusterRegistry) -> None:
    """A stop for an unknown job (no cluster, cannot park) arrives over NATS and is refused."""
    log = SQLiteEventLog(events)
    try:
        processor = NatsProcessor(JobIntake(log, clusters), NodeStateIntake(log, clusters), DeadLetterStore(db))
        delivery = Delivery(subject="cc.job.event", channel="job", msg_id="m-7", received_at=1.0)
        [outcome] = asyncio.run(processor.process(STOP_OF_7, delivery))
        assert outcome.kind == "not_found"
    finally:
        log.close()


def test_admin_endpoints(make_client: AppFactory, tokens: Tokens, tmp_path: Path, clusters: ClusterRegistry) -> None:
    db = tmp_path / "rejected.db"
    _reject(db, tmp_path / "events.db", clusters)
    http = make_client({"nats": {"dead-letter-path": str(db)}})
    admin = tokens.headers("admin")
    listing = http.get("/api/admin/rejected", headers=admin)
    assert listing.status_code == 200, listing.text
    body = listing.json()
    assert body["count"] == 1 and body["counts"] == {"open": {"not_found": 1}}
    [entry] = body["items"]
    assert entry["raw"] == STOP_OF_7.decode() and entry["subject"] == "cc.job.event" and entry["msgId"] == "m-7"
    assert "finding job failed: no job 7" in entry["reason"] and entry["status"] == "open"
    assert http.get(f"/api/admin/rejected/{entry['id']}", headers=admin).json()["kind"] == "not_found"
    again = http.post(f"/api/admin/rejected/{entry['id']}/retry", headers=admin).json()
    assert again["result"] == "rejected" and again["entry"]["attempts"] == 2
    started = http.post("/api/jobs/start_job/", json=start_body(7), headers=tokens.headers())
    assert started.status_code == 201
    done = http.post(f"/api/admin/rejected/{entry['id']}/retry", headers=admin).json()
    assert done["result"] == "resolved" and done["lines"][0]["status"] == "applied"
    job = http.get(f"/api/jobs/{started.json()['id']}", headers=tokens.headers()).json()["meta"]
    assert job["jobState"] == "completed" and job["duration"] == 50
    assert http.get("/api/admin/rejected", headers=admin).json()["count"] == 0
    assert http.get("/api/admin/rejected", params={"status": "all"}, headers=admin).json()["count"] == 1
    nats = http.get("/api/admin/nats", headers=admin).json()
    assert nats["configured"] is False and nats["deadLetters"] == {"resolved": {"not_found": 1}}
    assert_error(http.get("/api/admin/rejected/99", headers=admin), 404, "no rejected message with id 99")
    assert_error(http.get("/api/admin/rejected", params={"status": "x"}, headers=admin), 400, "status='x'")
    assert http.get("/api/admin/rejected", headers=tokens.headers("api")).status_code in (401, 403)


def test_admin_endpoints_without_nats(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    assert_error(http.get("/api/admin/rejected", headers=tokens.headers("admin")), 404, "not configured")
    assert http.get("/api/admin/nats", headers=tokens.headers("admin")).json() == {"configured": False}


def test_cli_list_and_retry(tmp_path: Path, archive_root: Path, clusters: ClusterRegistry,
                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.json"
    config.write_bytes(orjson.dumps({
        "main": {"db": "var/job.db"},
        "archive": {"kind": "file", "path": str(archive_root)},
        "event-log": {"kind": "sqlite", "path": "var/events.db"},
        "nats": {"dead-letter-path": "var/rejected.db"},
    }))
    _reject(tmp_path / "var" / "rejected.db", tmp_path / "var" / "events.db", clusters)
    cli = ["--config", str(config), "--env", str(tmp_path / "none.env"), "--log-level", "error"]
    assert main([*cli, "rejected", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1\t") and "not_found" in out and "1 rejected message(s)" in out
    assert main([*cli, "rejected", "retry", "1"]) == 1
    assert "still refused" in capsys.readouterr().err
    log = SQLiteEventLog(tmp_path / "var" / "events.db")
    try:
        asyncio.run(JobIntake(log, clusters).start_job(start_body(7), source="test"))
    finally:
        log.close()
    assert main([*cli, "rejected", "retry", "1"]) == 0
    assert "line 1: applied" in capsys.readouterr().out
    log = SQLiteEventLog(tmp_path / "var" / "events.db")
    try:
        assert [e.type for e in log.read()] == ["job.started", "job.stopped"]
    finally:
        log.close()
    assert main([*cli, "rejected", "list", "--json", "--all"]) == 0
    [entry] = orjson.loads(capsys.readouterr().out)
    assert entry["status"] == "resolved"
    assert main([*cli, "rejected", "retry", "42"]) == 1
    assert "no rejected message with id 42" in capsys.readouterr().err


def test_admin_nats_shows_the_metric_store_subscriptions(make_client: AppFactory, tokens: Tokens,
                                                         nats_url: str) -> None:
    """Metric lines over NATS without job subjects: the route says so, instead of `configured: false`."""
    http = make_client({"nats": {"address": nats_url}, "metric-store": {"nats-subscriptions": [
        {"subscribe-to": "hpc-metrics", "cluster-tag": "fritz"}]}})
    admin = tokens.headers("admin")
    eventually(lambda: http.get("/api/admin/nats", headers=admin).json()["metricStore"]["connected"],
               what="the metric store's NATS subscriber connected")
    nats = http.get("/api/admin/nats", headers=admin).json()
    assert nats["configured"] is True and "state" not in nats  # no job intake over NATS
    assert nats["metricStore"]["address"] == nats_url
    assert nats["metricStore"]["subscriptions"] == [{"subscribeTo": "hpc-metrics", "clusterTag": "fritz"}]
    assert nats["metricStore"]["messages"] == 0
