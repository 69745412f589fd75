"""The API's read routes in the read pool: a held read leaves start/stop answering, job metric answers
are bounded (reads.max-job-points) and streamed, large job pages are streamed from one snapshot; the
answers are the bytes they were."""

from __future__ import annotations

import dataclasses
import inspect
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import api.jobdata as jobdata
import api.joblist as joblist
import api.readpool as readpool
import api.routes.jobs as job_routes
from api.jobjson import job_json
from api.routes.common import full_job_json
from projections import queries
from tests.api.conftest import AppFactory, Tokens, assert_error, job_body

WAIT = 10.0
DAY = 86400
#: GET routes that are not plain functions, and why they are not run by ReadRoute.
SELF_SERVED = {
    "/healthz": "answers a constant on the loop",
    "/api/admin/status": "api/routes/admin.py: async, offloads its agent queries itself",
    "/api/admin/parked-stops": "api/routes/admin.py: async (not converted: module owned by the write side)",
    "/api/query/": "reads its body on the loop, then runs in the pool itself",
    "/api/debug/": "runs in the pool itself",
    "/api/healthcheck/": "reads its body on the loop, then runs in the pool itself",
}


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute of an app, through its included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI >= 0.160 keeps included routers as they are
            yield from api_routes(route.original_router.routes)
        elif hasattr(route, "routes"):
            yield from api_routes(route.routes)


def test_every_read_route_runs_in_the_read_pool(make_client: AppFactory) -> None:
    http = make_client()
    seen = []
    for route in api_routes(list(http.app.routes)):  # type: ignore[attr-defined]
        if "GET" not in (route.methods or ()):
            continue
        path = route.path
        seen.append(path)
        original = getattr(route.endpoint, "__wrapped__", None)
        pooled = original is not None and not inspect.iscoroutinefunction(original)
        assert pooled or path in SELF_SERVED, f"GET {path} runs on the event loop"
    assert {"/api/jobs/", "/api/jobs/{db_id}", "/api/jobs/metrics/{db_id}", "/api/clusters/", "/api/users/",
            "/api/nodestate/", "/api/admin/rejected"} <= set(seen)


def test_a_held_read_leaves_start_and_stop_answering(make_client: AppFactory, tokens: Tokens,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    http = make_client()
    h = tokens.headers()
    entered, release = threading.Semaphore(0), threading.Event()
    original = job_routes.job_page

    def held(*args: Any) -> Any:
        entered.release()
        assert release.wait(WAIT)
        return original(*args)

    monkeypatch.setattr(job_routes, "job_page", held)
    with ThreadPoolExecutor(1) as background:
        listing = background.submit(http.get, "/api/jobs/", headers=h)
        assert entered.acquire(timeout=WAIT)
        started = http.post("/api/jobs/start_job/", json=job_body(startTime=int(time.time()) - 60), headers=h)
        assert started.status_code == 201, started.text
        stop = {"jobId": 1000, "cluster": "fritz", "jobState": "completed", "stopTime": int(time.time())}
        assert http.post("/api/jobs/stop_job/", json=stop, headers=h).status_code == 200
        assert not listing.done()  # both answered while the read was held on its worker
        release.set()
        assert listing.result(WAIT).json()["items"] == 1


def write_cpu_load(http: TestClient, tok: Tokens, start: int, samples: int = 5) -> None:
    lines = [f"cpu_load,cluster=fritz,hostname=f0101,type=node value={k + 0.25} {start + 60 * k + 30}"
             for k in range(samples)]
    lines += [f"flops_any,cluster=fritz,hostname=f0101,type=hwthread,type-id={h} value={h} {start + 30}"
              for h in range(72)]
    assert http.post("/api/write/?cluster=fritz", content="\n".join(lines), headers=tok.headers()).status_code == 200


def test_a_job_with_more_points_than_the_limit_is_refused(make_client: AppFactory, tokens: Tokens) -> None:
    """A running job that started a year ago, its node with data now: a year of padded series."""
    http = make_client({"reads": {"max-job-points": 100_000}})
    h = tokens.headers()
    now = int(time.time())
    write_cpu_load(http, tokens, now - 600)
    year = http.post("/api/jobs/start_job/", json=job_body(startTime=now - 365 * DAY), headers=h).json()["id"]
    recent = http.post("/api/jobs/start_job/", json=job_body(jobId=2000, startTime=now - 600), headers=h).json()["id"]
    for response in (http.get(f"/api/jobs/{year}?all-metrics=true", headers=h),
                     http.post(f"/api/jobs/{year}", json=["cpu_load"], headers=h),
                     http.get(f"/api/jobs/metrics/{year}?metric=cpu_load", headers=h)):
        assert_error(response, 400, "reads.max-job-points (100,000)")
    data = http.get(f"/api/jobs/{recent}?all-metrics=true", headers=h).json()["data"]
    [cpu] = [d for d in data if d["name"] == "cpu_load"]
    assert [v for v in cpu["metric"]["series"][0]["data"] if v is not None] == [0.25, 1.25, 2.25, 3.25, 4.25]
    assert http.get(f"/api/jobs/{year}", headers=h).status_code == 200  # metadata alone is not bounded


def test_job_metric_answers_are_streamed_with_the_bytes_of_the_whole(make_client: AppFactory, tokens: Tokens,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    http = make_client({"archiver": {"enabled": False}})  # the stopped job's data stays in the metric store
    h = tokens.headers()
    now = int(time.time())
    write_cpu_load(http, tokens, now - 600)
    db_id = http.post("/api/jobs/start_job/", json=job_body(startTime=now - 600), headers=h).json()["id"]
    stop = {"jobId": 1000, "cluster": "fritz", "jobState": "completed", "stopTime": now}
    assert http.post("/api/jobs/stop_job/", json=stop, headers=h).status_code == 200
    services = http.app.state.services  # type: ignore[attr-defined]
    with services.reader.connect() as conn:
        row = queries.find_job(conn, db_id)
    request = dataclasses.replace(jobdata.data_request(jobdata._job_of(row)), scopes=("node",))
    entries = jobdata.with_names(services.metric_source.load_job_data(request))
    assert {e["name"] for e in entries} >= {"cpu_load", "flops_any"}
    whole = jobdata.dumps({"meta": full_job_json(services, row), "data": entries})
    metrics = jobdata.dumps({"data": {"jobMetrics": entries}, "error": None})

    monkeypatch.setattr(jobdata, "BATCH_POINTS", 1)  # one metric per load
    monkeypatch.setattr(readpool, "CHUNK_BYTES", 64)
    answer = http.get(f"/api/jobs/{db_id}?all-metrics=true", headers=h)
    assert "content-length" not in answer.headers and answer.content == whole
    assert http.get(f"/api/jobs/metrics/{db_id}", headers=h).content == metrics
    named = http.post(f"/api/jobs/{db_id}", json=["flops_any", "cpu_load", "nope"], headers=h).json()
    assert [d["name"] for d in named["data"]] == ["cpu_load", "flops_any"]


def finished_jobs(http: TestClient, tok: Tokens, count: int) -> None:
    for n in range(count):
        body = job_body(jobId=5000 + n, startTime=1_700_000_000 + 10 * (n // 2),  # pairs share a start time
                        metaData={"jobName": f"j{n}", "jobScript": "#!/bin/sh\n" + "x" * n})
        assert http.post("/api/jobs/start_job/", json=body, headers=tok.headers()).status_code == 201
        stop = {"jobId": 5000 + n, "cluster": "fritz", "startTime": body["startTime"], "jobState": "completed",
                "stopTime": body["startTime"] + 100}
        assert http.post("/api/jobs/stop_job/", json=stop, headers=tok.headers()).status_code == 200


@pytest.mark.parametrize(("page", "per_page"), [(1, 5), (2, 4), (3, 5), (1, 30), (9, 4)])
def test_large_job_pages_are_streamed_with_the_bytes_of_one_page(make_client: AppFactory, tokens: Tokens,
                                                                 monkeypatch: pytest.MonkeyPatch, page: int,
                                                                 per_page: int) -> None:
    http = make_client({"archiver": {"enabled": False}})  # monitoring states stay as they are between reads
    finished_jobs(http, tokens, 13)
    params = {"page": page, "items-per-page": per_page, "with-metadata": "true"}
    whole = http.get("/api/jobs/", params=params, headers=tokens.headers())
    assert "content-length" in whole.headers  # a page of at most BATCH rows: one query, one answer
    monkeypatch.setattr(joblist, "BATCH", 3)  # unaligned: pages start inside a batch
    monkeypatch.setattr(readpool, "CHUNK_BYTES", 64)
    streamed = http.get("/api/jobs/", params=params, headers=tokens.headers())
    assert streamed.content == whole.content
    assert streamed.json()["items"] == max(0, min(per_page, 13 - (page - 1) * per_page))


def test_a_streamed_page_reads_one_snapshot(make_client: AppFactory, tokens: Tokens,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A job started while a page is being written neither shifts its rows nor shows up in it."""
    http = make_client({"archiver": {"enabled": False}})
    finished_jobs(http, tokens, 8)
    services = http.app.state.services  # type: ignore[attr-defined]
    flt = queries.JobFilter()
    with services.reader.connect() as conn:
        expected = [job_json(r, None) for r in queries.list_jobs(conn, flt, 1, 6)]
    monkeypatch.setattr(joblist, "BATCH", 2)
    monkeypatch.setattr(readpool, "CHUNK_BYTES", 1)  # a piece per job
    pieces = joblist._batched(services.reader, flt, 1, 6, True)
    first = next(pieces)  # the first batch is read: the snapshot is taken
    newest = job_body(jobId=9999, startTime=1_800_000_000)  # would list first, pushing every row down
    assert http.post("/api/jobs/start_job/", json=newest, headers=tokens.headers()).status_code == 201
    answer = orjson.loads(first + b"".join(pieces))
    assert answer == {"jobs": orjson.loads(orjson.dumps(expected)), "items": 6, "page": 1}
    assert http.get("/api/jobs/", headers=tokens.headers()).json()["jobs"][0]["jobId"] == 9999
