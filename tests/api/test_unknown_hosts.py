"""Hosts outside the cluster's nodelists: accepted, counted per cluster, listed in the admin status, exported."""

from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Tokens, job_body
from tests.api.test_prometheus import scrape, value


def test_job_start_on_hosts_outside_the_nodelist_is_accepted_and_reported(
        client: tuple[TestClient, Tokens], caplog: pytest.LogCaptureFixture) -> None:
    http, tok = client
    resources = [{"hostname": h, "hwthreads": list(range(72))} for h in ("f0101", "f9901", "f9902")]
    with caplog.at_level(logging.WARNING, logger="streams.unknownhosts"):
        started = http.post("/api/jobs/start_job/", json=job_body(numNodes=3, resources=resources),
                            headers=tok.headers())
        assert started.status_code == 201, started.text
        # As in cc-backend, a first host outside the nodelists needs the subcluster named.
        again = http.post("/api/jobs/start_job/", json=job_body(jobId=1001, numNodes=1, resources=resources[1:2],
                                                                 subCluster="main"),
                          headers=tok.headers())
        assert again.status_code == 201, again.text
    warned = [r.getMessage() for r in caplog.records if "job intake" in r.getMessage()]
    assert len(warned) == 2 and "'f9901'" in warned[0] and "'f9902'" in warned[1]  # once per new host

    status = http.get("/api/admin/status", headers=tok.headers("admin"))
    assert status.status_code == 200, status.text
    jobs = status.json()["unknownHosts"]["jobs"]
    assert jobs["byCluster"] == {"fritz": 3}
    by_host = {h["host"]: h for h in jobs["hosts"]}
    assert set(by_host) == {"f9901", "f9902"}
    assert by_host["f9901"]["count"] == 2 and by_host["f9901"]["cluster"] == "fritz"
    assert by_host["f9901"]["firstSeen"] <= by_host["f9901"]["lastSeen"] <= time.time()
    samples = scrape(http, tok)
    assert value(samples, "ccstream_intake_unknown_host_resources_total", cluster="fritz") == 3


def test_metric_lines_for_hosts_outside_the_nodelist_are_stored_and_counted(
        client: tuple[TestClient, Tokens], caplog: pytest.LogCaptureFixture) -> None:
    http, tok = client
    now = int(time.time()) // 60 * 60
    lines = "".join(f"cpu_load,cluster=fritz,hostname={host},type=node value={k} {now - 60 * k}\n"
                    for k in range(3) for host in ("f0101", "x9999"))
    with caplog.at_level(logging.WARNING, logger="streams.unknownhosts"):
        for _ in range(2):
            written = http.post("/api/write/", content=lines, headers=tok.headers())
            assert written.status_code == 200 and written.json()["accepted"] == 6, written.text
    assert [r.getMessage() for r in caplog.records if "'x9999'" in r.getMessage()] != []
    assert len([r for r in caplog.records if "metric store" in r.getMessage()]) == 1

    query = {"cluster": "fritz", "from": now - 120, "to": now + 60, "queries": [{"metric": "cpu_load",
                                                                               "host": "x9999"}]}
    answer = http.post("/api/query/", json=query, headers=tok.headers())
    assert answer.status_code == 200 and answer.json()["results"][0][0]["data"] == [2.0, 1.0, 0.0]  # stored

    status = http.get("/api/admin/status", headers=tok.headers("admin")).json()
    metrics = status["unknownHosts"]["metrics"]
    assert metrics["byCluster"] == {"fritz": 6}
    assert [(h["cluster"], h["host"], h["count"]) for h in metrics["hosts"]] == [("fritz", "x9999", 6)]
    assert "unknown_hosts" not in status["metricStore"]
    samples = scrape(http, tok)
    assert value(samples, "ccstream_metricstore_unknown_host_samples_total", cluster="fritz") == 6
