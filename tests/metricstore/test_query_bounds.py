"""`/api/query/` and `/api/debug/` bounded by what exists and by the store's limits, answered entry by
entry with the bytes of the whole answer, read in slices and combined outside the store's lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

import api.metricstore_routes as routes
import api.readpool as readpool
import metricstore.query as query
import metricstore.source as source
from metricstore.jobdata import JobDataRequest, JobResource
from metricstore.query import APIQueryRequest, run_query
from metricstore.source import InProcessMetricSource
from metricstore.store import MetricStore
from tests.metricstore.conftest import T0, Clock, Keys, make_auth

CHUNK0 = T0 // 3600 * 3600  # the store keeps hour-long chunks: its oldest slot begins here
HW = [str(h) for h in range(72)]


def fill(store: MetricStore, clock: Clock, steps: int = 10) -> None:
    """f0101 and f0102: cpu_load (node) and flops_any (72 hwthreads, h + k at step k), from T0, 60 s apart."""
    lines = []
    for k in range(steps):
        t = T0 + 60 * k
        for host in ("f0101", "f0102"):
            lines.append(f"cpu_load,cluster=fritz,hostname={host},type=node value={k + 0.5} {t}")
            lines += [f"flops_any,cluster=fritz,hostname={host},type=hwthread,type-id={h} value={h + k} {t}"
                      for h in range(72)]
    clock.now = T0 + 60 * steps
    assert store.ingest_lines(("\n".join(lines) + "\n").encode()).ok


def client(store: MetricStore, keys: Keys) -> TestClient:
    from fastapi import FastAPI

    from api.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(routes.build_metricstore_router(store, make_auth(keys)))
    http = TestClient(app)
    http.headers["Authorization"] = f"Bearer {keys.token()}"
    return http


def ask(http: TestClient, body: dict[str, Any]) -> Any:
    return http.post("/api/query/", content=orjson.dumps({"cluster": "fritz", **body}))


def reference(store: MetricStore, body: dict[str, Any]) -> bytes:
    """The answer as one document, the way it was written before answers were streamed."""
    answer = run_query(store, APIQueryRequest.model_validate({"cluster": "fritz", **body}))
    answer["results"] = [[routes._go_style(e) for e in entries] for entries in answer["results"]]
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


BODIES = [
    {"from": T0, "to": T0 + 600, "queries": [{"metric": "cpu_load", "host": "f0101"},
                                              {"metric": "cpu_load", "host": "nohost"}]},
    {"from": T0 - 120, "to": T0 + 9999, "with-padding": False,
     "queries": [{"metric": "flops_any", "host": "f0102", "type": "hwthread", "type-ids": HW[:5]},
                 {"metric": "flops_any", "host": "f0101", "type": "hwthread", "type-ids": HW, "aggreg": True,
                  "scale-by": 2.5}]},
    {"from": T0, "to": T0 + 600, "for-all-nodes": ["cpu_load", "flops_any"], "with-stats": False},
    {"from": T0, "to": T0 + 600, "queries": [{"metric": "flops_any", "host": "f0101", "resolution": 180}]},
]


def test_a_query_in_the_window_answers_exactly_as_before(store: MetricStore, clock: Clock, keys: Keys) -> None:
    fill(store, clock, steps=3)
    body = {"from": T0, "to": T0 + 240, "queries": [{"metric": "cpu_load", "host": "f0101"}]}
    answer = ask(client(store, keys), body)
    assert answer.content == (b'{"results":[[{"from":%d,"to":%d,"resolution":60,"avg":1.5,"min":0.5,"max":2.5,'
                              b'"data":[0.5,1.5,2.5]}]]}' % (T0, T0 + 180))  # cut after the newest sample
    assert answer.headers["content-length"] == str(len(answer.content))  # small: a plain answer


def test_from_zero_starts_at_the_oldest_slot_the_store_holds(store: MetricStore, clock: Clock, keys: Keys) -> None:
    fill(store, clock)
    http = client(store, keys)
    everything = ask(http, {"from": 0, "to": T0 + 600, "queries": [{"metric": "cpu_load", "host": "f0101"}]})
    [[entry]] = everything.json()["results"]
    assert entry["from"] == CHUNK0  # not 0: a 30 M step padding of nulls before it
    assert len(entry["data"]) == (T0 + 600 - CHUNK0) // 60
    assert entry["data"][-10:] == [k + 0.5 for k in range(10)]
    from_chunk = ask(http, {"from": CHUNK0, "to": T0 + 600, "queries": [{"metric": "cpu_load", "host": "f0101"}]})
    assert everything.content == from_chunk.content
    # The end was already cut after the newest sample, and a start after it has nothing.
    [[late]] = ask(http, {"from": T0 + 10**6, "to": T0 + 2 * 10**6,
                          "queries": [{"metric": "cpu_load", "host": "f0101"}]}).json()["results"]
    assert late["data"] == []


def test_a_series_over_its_limit_is_refused(make_store: Callable[..., MetricStore], clock: Clock,
                                            keys: Keys) -> None:
    store = make_store({"max-points-per-series": 5})
    fill(store, clock)
    http = client(store, keys)
    body = {"from": T0, "to": T0 + 600, "queries": [{"metric": "cpu_load", "host": "f0101"}]}
    refused = ask(http, body)
    assert refused.status_code == 400
    assert refused.json()["status"] == "Bad Request"
    assert "10 points in one series" in refused.json()["error"]
    assert "metric-store.max-points-per-series (5)" in refused.json()["error"]
    coarser = ask(http, {**body, "queries": [{"metric": "cpu_load", "host": "f0101", "resolution": 180}]})
    assert coarser.status_code == 200 and len(coarser.json()["results"][0][0]["data"]) == 3


def test_a_request_over_its_limit_is_refused(make_store: Callable[..., MetricStore], clock: Clock,
                                             keys: Keys) -> None:
    store = make_store({"max-points-per-request": 15})
    fill(store, clock)
    http = client(store, keys)
    one = {"metric": "cpu_load", "host": "f0101"}
    assert ask(http, {"from": T0, "to": T0 + 600, "queries": [one]}).status_code == 200
    refused = ask(http, {"from": T0, "to": T0 + 600, "queries": [one, {**one, "host": "f0102"}]})
    assert refused.status_code == 400
    assert "20 points, more than metric-store.max-points-per-request (15)" in refused.json()["error"]


@pytest.mark.parametrize("body", BODIES)
def test_large_answers_are_streamed_with_the_bytes_of_the_whole(store: MetricStore, clock: Clock, keys: Keys,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                body: dict[str, Any]) -> None:
    fill(store, clock)
    expected = reference(store, body)
    monkeypatch.setattr(routes, "CHUNK_BYTES", 64)
    monkeypatch.setattr(readpool, "CHUNK_BYTES", 64)
    answer = ask(client(store, keys), body)
    assert answer.status_code == 200
    assert "content-length" not in answer.headers  # written piece by piece
    assert answer.content == expected


def job_data(store: MetricStore) -> bytes:
    request = JobDataRequest(cluster="fritz", resources=(JobResource("f0101"), JobResource("f0102", tuple(range(36)))),
                             start=T0 - 90, stop=T0 + 600, scopes=("node", "socket", "core"), as_lists=False,
                             exact_arrays=True)
    return orjson.dumps(InProcessMetricSource(store).load_job_data(request), option=orjson.OPT_SERIALIZE_NUMPY)


def test_slices_of_a_read_give_the_same_values(store: MetricStore, clock: Clock, keys: Keys,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fill(store, clock)
    whole = [reference(store, body) for body in BODIES], job_data(store)
    monkeypatch.setattr(query, "READ_SLICE_VALUES", 7)  # 72 rows: one step per slice; 1 row: 7 steps
    monkeypatch.setattr(source, "READ_SLICE_VALUES", 7)
    assert ([reference(store, body) for body in BODIES], job_data(store)) == whole


def test_values_are_combined_outside_the_stores_lock(store: MetricStore, clock: Clock,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fill(store, clock)
    combined: list[str] = []

    def unlocked(name: str, function: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        def check(*args: Any) -> np.ndarray:
            assert not store.lock._is_owned(), f"{name} ran under the store's lock"  # type: ignore[attr-defined]
            combined.append(name)
            return function(*args)
        return check

    monkeypatch.setattr(query, "aggregate", unlocked("aggregate", query.aggregate))
    monkeypatch.setattr(source, "_reduce", unlocked("_reduce", source._reduce))
    monkeypatch.setattr(source, "_mean_or_sum", unlocked("_mean_or_sum", source._mean_or_sum))
    for body in BODIES:
        reference(store, body)
    job_data(store)
    assert {"aggregate", "_reduce", "_mean_or_sum"} <= set(combined)


def test_a_debug_dump_over_the_limit_is_refused(make_store: Callable[..., MetricStore], clock: Clock,
                                                keys: Keys) -> None:
    store = make_store({"max-points-per-request": 1000})
    fill(store, clock)
    http = client(store, keys)
    refused = http.get("/api/debug/?selector=fritz:f0101")
    assert refused.status_code == 400 and "metric-store.max-points-per-request (1,000)" in refused.json()["error"]
    one = http.get("/api/debug/?selector=fritz:f0101:hwthread3").json()["tree"]
    buffer = one["children"]["hwthread3"]["metrics"]["flops_any"]
    assert (buffer["start"], buffer["data"]) == (T0, [3.0 + k for k in range(10)])
