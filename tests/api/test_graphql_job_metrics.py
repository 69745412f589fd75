"""GraphQL `jobMetrics`, `jobStats` and `scopedJobStats`: a running job from the metric store (fed with line
protocol), then the same job from its archive file, and the post-processing steps on their own."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from api.graphql.jobmetrics import node_sums, resample_entry, rounded_statistics, statistics_series
from tests.api.conftest import AppFactory, Tokens, job_body
from tests.api.gqlsupport import Gql
from tests.support.wait import eventually

#: The job list row's document (§2.3 of the UI inventory), as the UI sends it.
ROW = """query($id:ID!, $metrics:[String!]!, $scopes:[MetricScope!]!, $selectedResolution:Int) {
  jobMetrics(id: $id, metrics: $metrics, scopes: $scopes, resolution: $selectedResolution) { name scope metric {
  unit{prefix base} timestep statisticsSeries{min mean median max} series{ hostname id data statistics{min avg max} }
  } } }"""
HWTHREADS = 8


def write_metrics(http: Any, tok: Tokens, start: int) -> None:
    lines = []
    for i in range(5):
        t = start + 60 * i + 30
        lines.append(f"cpu_load,cluster=fritz,hostname=f0101,type=node value={10 * (i + 1)} {t}")
        for thread in range(HWTHREADS):
            lines.append(f"flops_any,cluster=fritz,hostname=f0101,type=hwthread,type-id={thread} value={thread} {t}")
    response = http.post("/api/write/?cluster=fritz", content="\n".join(lines).encode(), headers=tok.headers())
    assert response.status_code == 200, response.text


def metric(data: list[dict[str, Any]], name: str, scope: str) -> dict[str, Any]:
    [entry] = [d for d in data if d["name"] == name and d["scope"] == scope]
    return dict(entry["metric"])


def test_job_metrics_of_a_running_then_archived_job(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    client = Gql(http, tokens)
    start = int(time.time()) - 600
    write_metrics(http, tokens, start)
    body = job_body(startTime=start, resources=[{"hostname": "f0101", "hwthreads": list(range(HWTHREADS))}],
                    numHwthreads=HWTHREADS)
    started = http.post("/api/jobs/start_job/", json=body, headers=tokens.headers())
    assert started.status_code == 201, started.text
    db_id = str(started.json()["id"])
    variables = {"id": db_id, "metrics": ["cpu_load", "flops_any"], "scopes": ["node", "hwthread"],
                 "selectedResolution": 0}

    live = client.data(ROW, variables)["jobMetrics"]
    load = metric(live, "cpu_load", "node")
    assert load["timestep"] == 60 and load["unit"] == {"prefix": None, "base": ""}  # as fritz configures it
    assert [v for v in load["series"][0]["data"] if v is not None] == [10, 20, 30, 40, 50]
    assert load["series"][0]["statistics"] == {"min": 10, "avg": 30, "max": 50}
    assert load["statisticsSeries"] is None  # one series
    threads = metric(live, "flops_any", "hwthread")
    assert len(threads["series"]) == HWTHREADS and threads["statisticsSeries"] is not None  # eight series
    first = next(i for i, v in enumerate(threads["statisticsSeries"]["max"]) if v is not None)
    assert threads["statisticsSeries"]["max"][first] == HWTHREADS - 1
    assert threads["statisticsSeries"]["mean"][first] == (HWTHREADS - 1) / 2
    assert metric(live, "flops_any", "node")["series"][0]["statistics"]["max"] == sum(range(HWTHREADS))

    stats = client.data(f'query {{ jobStats(id: "{db_id}", metrics: ["cpu_load"]) {{ name data {{ min avg max }} }} }}')
    assert stats["jobStats"] == [{"name": "cpu_load", "data": {"min": 10, "avg": 30, "max": 50}}]
    scoped = client.data(f'query {{ scopedJobStats(id: "{db_id}", metrics: ["flops_any"], scopes: ["hwthread"])'
                         ' { name scope stats { hostname id data { min avg max } } } }')["scopedJobStats"]
    [flops] = scoped
    assert flops["scope"] == "hwthread" and len(flops["stats"]) == HWTHREADS
    assert {s["id"]: s["data"]["avg"] for s in flops["stats"]} == {str(t): float(t) for t in range(HWTHREADS)}

    stop = {"jobId": 1000, "cluster": "fritz", "jobState": "completed", "stopTime": start + 300}
    assert http.post("/api/jobs/stop_job/", json=stop, headers=tokens.headers()).status_code == 200
    status = f'query {{ job(id: "{db_id}") {{ monitoringStatus }} }}'
    eventually(lambda: client.data(status)["job"]["monitoringStatus"] == 3, 60, "the job archived")
    archived = client.data(ROW, variables)["jobMetrics"]
    assert [v for v in metric(archived, "cpu_load", "node")["series"][0]["data"] if v is not None] == [
        10, 20, 30, 40, 50]
    stats = client.data(f'query {{ jobStats(id: "{db_id}", metrics: ["cpu_load"]) {{ name data {{ min avg max }} }} }}')
    assert stats["jobStats"] == [{"name": "cpu_load", "data": {"min": 10, "avg": 30, "max": 50}}]


def test_someone_elses_job_has_no_metrics_for_a_user(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    started = http.post("/api/jobs/start_job/", json=job_body(user="bob"), headers=tokens.headers())
    db_id = started.json()["id"]
    response = http.post("/query", json={"query": f'query {{ jobMetrics(id: "{db_id}") {{ name }} }}'},
                         headers=tokens.headers("user"))
    assert response.json()["errors"][0]["message"] == f"no job with id {db_id}"


def entry(series: list[list[float]], timestep: int = 60) -> dict[str, Any]:
    return {"name": "flops_any", "scope": "core", "metric": {"unit": {"base": "F/s"}, "timestep": timestep,
            "series": [{"hostname": f"h{i % 2}", "id": str(i), "statistics": {"min": 1 / 3, "avg": 2 / 3, "max": 1.0},
                        "data": values} for i, values in enumerate(series)]}}


def test_archived_series_are_resampled_when_long_enough() -> None:
    long = entry([list(map(float, range(1200)))])
    resampled = resample_entry(long, 600, minimum_points=600)
    assert resampled["metric"]["timestep"] == 600 and len(resampled["metric"]["series"][0]["data"]) == 120
    short = entry([list(map(float, range(100)))])
    assert resample_entry(short, 600, minimum_points=600) is short  # below minimum-points: as it is
    assert resample_entry(long, 60, minimum_points=600) is long  # the native resolution


def test_statistics_series_leave_gaps_out() -> None:
    stats = statistics_series([{"data": [1.0, None, 3.0]}, {"data": [3.0, 4.0, None]}])
    assert stats == {"min": [1.0, 4.0, 3.0], "mean": [2.0, 4.0, 3.0], "median": [2.0, 4.0, 3.0],
                     "max": [3.0, 4.0, 3.0]}


def test_flops_and_bandwidth_are_summed_to_node_scope_when_only_finer_scopes_exist() -> None:
    finer = entry([[1.0, 2.0], [3.0, math.nan], [5.0, 6.0]])
    [node] = node_sums([finer], ["node", "core"])
    assert node["scope"] == "node"
    sums = {s["hostname"]: np.asarray(s["data"]).tolist() for s in node["metric"]["series"]}
    assert sums == {"h0": [6.0, 8.0], "h1": [3.0, 0.0]}
    assert node_sums([finer], ["core"]) == []  # node scope not asked for


def test_statistics_are_rounded_to_two_decimals() -> None:
    rounded = rounded_statistics(entry([[1.0]]))
    assert rounded["metric"]["series"][0]["statistics"] == {"min": 0.33, "avg": 0.67, "max": 1.0}
