"""A job's metric data over REST: from the metric store while it runs, from the archive once archived."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import AppFactory, Tokens, assert_error, job_body


def write_metrics(http: TestClient, tok: Tokens, start: int) -> None:
    lines = []
    for i in range(5):
        t = start + 60 * i + 30
        lines.append(f"cpu_load,cluster=fritz,hostname=f0101,type=node,type-id=0 value={10 * (i + 1)} {t}")
        lines.append(f"flops_any,cluster=fritz,hostname=f0101,type=hwthread,type-id=0 value=2.5 {t}")
    response = http.post("/api/write/?cluster=fritz", content="\n".join(lines).encode(), headers=tok.headers())
    assert response.status_code == 200, response.text


def series_values(data: list[dict[str, Any]], name: str) -> list[float | None]:
    [entry] = [d for d in data if d["name"] == name and d["scope"] == "node"]
    return entry["metric"]["series"][0]["data"]


def test_running_then_archived_job_metrics_have_the_same_shape(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    start = int(time.time()) - 600
    write_metrics(http, tokens, start)
    started = http.post("/api/jobs/start_job/", json=job_body(startTime=start), headers=tokens.headers())
    assert started.status_code == 201, started.text
    db_id = started.json()["id"]

    running = http.get(f"/api/jobs/{db_id}?all-metrics=true", headers=tokens.headers())
    assert running.status_code == 200, running.text
    live = running.json()["data"]
    assert [v for v in series_values(live, "cpu_load") if v is not None] == [10, 20, 30, 40, 50]
    assert {"name", "scope", "metric"} == set(live[0])

    stop = {"jobId": 1000, "cluster": "fritz", "jobState": "completed", "stopTime": start + 300}
    assert http.post("/api/jobs/stop_job/", json=stop, headers=tokens.headers()).status_code == 200
    deadline = time.monotonic() + 20
    while http.get(f"/api/jobs/{db_id}", headers=tokens.headers()).json()["meta"]["monitoringStatus"] != 3:
        assert time.monotonic() < deadline, "the job was not archived"
        time.sleep(0.05)

    archived = http.get(f"/api/jobs/{db_id}?all-metrics=true", headers=tokens.headers()).json()["data"]
    assert [v for v in series_values(archived, "cpu_load") if v is not None] == [10, 20, 30, 40, 50]
    assert {(d["name"], d["scope"]) for d in archived} >= {("cpu_load", "node"), ("flops_any", "node")}

    selected = http.post(f"/api/jobs/{db_id}", json=["flops_any"], headers=tokens.headers()).json()["data"]
    assert [d["name"] for d in selected] == ["flops_any"]
    by_scope = http.get(f"/api/jobs/metrics/{db_id}?metric=flops_any&scope=node&scope=core",
                        headers=tokens.headers()).json()
    assert by_scope["error"] is None
    assert {(m["name"], m["scope"]) for m in by_scope["data"]["jobMetrics"]} == {("flops_any", "node"),
                                                                                   ("flops_any", "core")}


def test_metric_requests_are_checked(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    body = job_body(startTime=int(time.time()) - 60)
    started = http.post("/api/jobs/start_job/", json=body, headers=tokens.headers())
    db_id = started.json()["id"]
    assert http.get(f"/api/jobs/{db_id}", headers=tokens.headers()).json()["data"] is None
    assert_error(http.get(f"/api/jobs/metrics/{db_id}?scope=galaxy", headers=tokens.headers()), 400, "galaxy")
    assert_error(http.post(f"/api/jobs/{db_id}", json={"a": 1}, headers=tokens.headers()), 400, "array of metric names")
    assert_error(http.get("/api/jobs/metrics/999999", headers=tokens.headers()), 404)
