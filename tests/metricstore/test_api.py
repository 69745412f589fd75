"""cc-metric-store's HTTP API over the store: write, query, free, debug, healthcheck, auth, errors."""

from __future__ import annotations

import json

import orjson
import pytest
from fastapi.testclient import TestClient

from metricstore.store import MetricStore
from tests.metricstore.conftest import SPECS, T0, Keys


def test_write_every_line_kind_then_query_the_example(api: TestClient, store: MetricStore,
                                                      metrics_lp: bytes) -> None:
    resp = api.post("/api/write/?cluster=fritz", content=metrics_lp)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 14 and resp.json()["dropped_unknown_metric"] == 2
    request = json.loads((SPECS / "examples" / "ccms-query.request.json").read_text())
    resp = api.request("GET", "/api/query/", content=json.dumps(request))
    assert resp.status_code == 200, resp.text
    cpu_load, flops, mem_bw = resp.json()["results"]
    assert cpu_load == [{"from": 1675954353, "to": 1675954413, "resolution": 60, "avg": 31.64, "min": 31.64,
                         "max": 31.64, "data": [31.64]}]
    assert flops[0]["data"] == [1.23]  # hwthreads 0 and 1 summed: 0.61 + 0.62
    assert [e["data"] for e in mem_bw] == [[2.65], [2.23]]
    assert api.post("/api/query/", content=json.dumps(request)).json() == resp.json()


def test_query_numbers_are_rounded_like_go_and_nan_is_null(api: TestClient) -> None:
    lines = (f"cpu_load,cluster=fritz,hostname=h1 value=1.23456 {T0}\n"
             f"cpu_load,cluster=fritz,hostname=h1 value=2 {T0 + 120}\n")
    assert api.post("/api/write/", content=lines).status_code == 200
    body = {"cluster": "fritz", "from": T0, "to": T0 + 180, "queries": [{"metric": "cpu_load", "host": "h1"}]}
    entry = api.post("/api/query/", content=json.dumps(body)).json()["results"][0][0]
    assert entry["data"] == [1.235, None, 2.0] and entry["avg"] == 1.62 and entry["min"] == 1.23


def test_partly_bad_batch_answers_200_naming_the_refused_lines(api: TestClient, store: MetricStore) -> None:
    body = (f"cpu_load,cluster=fritz,hostname=h1 value=1 {T0}\n"
            f"cpu_load,cluster=fritz,hostname=h/1 value=1 {T0}\n"
            f"cpu_load,cluster=fritz,hostname=h2 val=1 {T0}\n"
            f"cpu_load,cluster=fritz,hostname=h3 value=3 {T0}\n")
    resp = api.post("/api/write/", content=body)
    assert resp.status_code == 200  # cc-metric-collector counts anything but 200 as a failed batch
    answer = resp.json()
    assert answer["accepted"] == 2 and answer["rejected"] == 2
    assert answer["rejected_by_reason"] == {"invalid_name": 1, "parse_error": 1}
    assert [(e["line"], e["reason"]) for e in answer["errors"]] == [(2, "invalid_name"), (3, "parse_error")]
    assert answer["errors"][0]["error"] == "invalid hostname 'h/1': must not contain '..', '/' or '\\'"
    assert store.levels("fritz", "h1", "cpu_load") is not None and store.levels("fritz", "h3", "cpu_load")
    stats = api.get("/api/debug/").status_code == 200 and store.stats()
    assert stats["batches_partial"] == 1 and stats["batches_refused"] == 0
    assert stats["lines_rejected_by_reason"] == {"invalid_name": 1, "parse_error": 1}


def test_batch_with_nothing_stored_answers_400(api: TestClient, store: MetricStore) -> None:
    body = f"cpu_load,cluster=fritz,hostname=h/1 value=1 {T0}\ncpu_load,cluster=fritz,hostname=h1 val=1 {T0}\n"
    resp = api.post("/api/write/", content=body)
    assert resp.status_code == 400
    assert resp.json() == {"status": "Bad Request", "error": "2 line(s) rejected, 0 sample(s) stored: "
                           "line 1: invalid hostname 'h/1': must not contain '..', '/' or '\\'; "
                           "line 2: no field 'value' in 'val=1'"}
    assert store.stats()["batches_refused"] == 1 and store.levels("fritz", "h1", "cpu_load") is None


def test_batch_of_only_old_or_unknown_samples_is_not_an_error(api: TestClient, store: MetricStore) -> None:
    resp = api.post("/api/write/", content=f"no_such_metric,cluster=fritz,hostname=h1 value=1 {T0}\n")
    assert resp.status_code == 200 and resp.json()["dropped_unknown_metric"] == 1 and resp.json()["rejected"] == 0


@pytest.mark.parametrize(("body", "message"), [
    (b"", "query: empty request body, expected JSON"),
    (b"{", "query: invalid JSON"),
    (b'{"cluster": "fritz", "to": 5}', "query: from: Field required"),
    (b'{"cluster": "fritz", "from": 1, "to": 5, "queries": [{"metric": "x"}]}', "query: queries.0.host"),
])
def test_bad_query_bodies_get_a_precise_400(api: TestClient, body: bytes, message: str) -> None:
    resp = api.post("/api/query/", content=body)
    assert resp.status_code == 400 and resp.json()["status"] == "Bad Request"
    assert resp.json()["error"].startswith(message), resp.json()


def test_healthcheck_shape(api: TestClient, clock) -> None:
    fresh = ["cpu_load", "mem_used", "nfs4_read"]
    lines = [f"{m},cluster=fritz,hostname=f0649 value=1 {T0}" for m in fresh]
    lines += [f"flops_any,cluster=fritz,hostname={h},type=hwthread,type-id=0 value=1 {T0}" for h in ("f0649", "f0650")]
    lines += [f"mem_bw,cluster=fritz,hostname={h},type=socket,type-id=0 value=1 {T0}" for h in ("f0649", "f0650")]
    lines += [f"{m},cluster=fritz,hostname=f0650 value=1 {T0}" for m in ("cpu_load", "mem_used")]
    lines += [f"mem_bw,cluster=fritz,hostname=f0650,type=socket,type-id=1 value=1 {T0 - 600}"]  # stale socket
    assert api.post("/api/write/", content="\n".join(lines)).status_code == 200
    request = (SPECS / "examples" / "ccms-healthcheck.request.json").read_bytes()
    resp = api.request("GET", "/api/healthcheck/", content=request)
    assert resp.status_code == 200
    assert resp.json() == json.loads((SPECS / "examples" / "ccms-healthcheck.response.json").read_text())
    clock.now = T0 + 3600  # everything stale now
    later = api.request("GET", "/api/healthcheck/", content=request).json()
    assert later["f0649"]["State"] == "failed"
    unknown = api.get("/api/healthcheck/?cluster=fritz&node=nohost").json()
    assert unknown["nohost"]["State"] == "failed"


def test_free(api: TestClient, store: MetricStore, clock) -> None:
    clock.now = T0 + 7300
    lines = []
    for ts in (T0, T0 + 3600, T0 + 7200):
        lines += [f"mem_bw,cluster=fritz,hostname=f0649,type=socket,type-id=0 value=1 {ts}",
                  f"cpu_load,cluster=fritz,hostname=f0649 value=2 {ts}",
                  f"cpu_load,cluster=fritz,hostname=f0650 value=3 {ts}"]
    assert api.post("/api/write/", content="\n".join(lines)).status_code == 200
    selectors = (SPECS / "examples" / "ccms-free.request.json").read_bytes()
    resp = api.post(f"/api/free/?to={T0 + 3600 + 1}", content=selectors)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    assert resp.text.startswith("buffers freed: ") and int(resp.text.split(": ")[1]) >= 2
    queries = [{"metric": "mem_bw", "host": "f0649", "type": "socket", "type-ids": ["0"]},
               {"metric": "cpu_load", "host": "f0650"}, {"metric": "cpu_load", "host": "f0649"}]
    body = {"cluster": "fritz", "from": T0, "to": T0 + 7260, "queries": queries}
    results = api.post("/api/query/", content=json.dumps(body)).json()["results"]
    for freed in results[:2]:
        data = freed[0]["data"]
        assert data[0] is None and data[60] is None and data[120] is not None
    kept = results[2][0]["data"]
    assert (kept[0], kept[60], kept[120]) == (2.0, 2.0, 2.0)
    assert api.post("/api/free/?to=abc", content=b"[]").status_code == 400
    assert api.post("/api/free/?to=1", content=b'{"a": 1}').json()["error"].startswith("free: body must be")


def test_debug(api: TestClient, metrics_lp: bytes) -> None:
    api.post("/api/write/?cluster=fritz", content=metrics_lp)
    overview = api.post("/api/debug/").json()
    assert overview["clusters"] == {"alex": ["a0603"], "fritz": ["f0649", "f0650"]}
    assert overview["stats"]["samples_accepted"] == 14
    tree = api.get("/api/debug/?selector=fritz:f0649").json()["tree"]
    assert tree["metrics"]["cpu_load"]["data"] == [pytest.approx(31.64)]
    assert tree["metrics"]["cpu_load"]["frequency"] == 60
    assert tree["children"]["socket1"]["metrics"]["mem_bw"]["data"] == [pytest.approx(2.23)]
    assert api.get("/api/debug/?selector=nope").status_code == 400


def test_auth(api: TestClient, keys: Keys) -> None:
    body = b"cpu_load,cluster=fritz,hostname=h1 value=1 1675954380"
    anonymous = TestClient(api.app)
    resp = anonymous.post("/api/write/", content=body)
    assert resp.status_code == 401 and resp.json()["status"] == "Unauthorized"
    assert anonymous.post("/api/write/", content=body, headers={"X-Auth-Token": keys.token()}).status_code == 200
    other = Keys()
    bad = anonymous.post("/api/write/", content=body, headers={"Authorization": f"Bearer {other.token()}"})
    assert bad.status_code == 401 and "invalid token" in bad.json()["error"]
    expired = anonymous.post("/api/query/", content=b"{}", headers={"X-Auth-Token": keys.token(ttl=-10)})
    assert expired.status_code == 401
    for path in ("/api/query/", "/api/free/?to=1", "/api/debug/", "/api/healthcheck/"):
        assert anonymous.post(path, content=b"[]").status_code == 401, path


def test_standalone_app(make_store, keys: Keys) -> None:
    from api.metricstore_routes import create_metricstore_app
    from tests.metricstore.conftest import make_auth

    store = make_store()
    with TestClient(create_metricstore_app(store, make_auth(keys))) as client:
        client.headers["X-Auth-Token"] = keys.token()
        line = b"cpu_load,cluster=fritz,hostname=h value=1 1675954380"
        assert client.post("/api/write/", content=line).status_code == 200
        stats = client.get("/api/metricstore/stats/").json()
        assert stats["samples_accepted"] == 1 and stats["last_restore_seconds"] is not None
    assert store.wal is None  # closed by the lifespan
    assert orjson.loads(orjson.dumps(store.stats()))["series"] == 1


def test_standalone_app_holds_bodies_to_its_settings(make_store, keys: Keys) -> None:
    from api.config import Settings
    from api.metricstore_routes import create_metricstore_app
    from tests.metricstore.conftest import make_auth

    settings = Settings.model_validate({"main": {"max-body-bytes": 100}, "metric-store": {"max-write-bytes": 200}})
    store = make_store()
    with TestClient(create_metricstore_app(store, make_auth(keys), settings=settings)) as client:
        client.headers["X-Auth-Token"] = keys.token()
        line = b"cpu_load,cluster=fritz,hostname=h value=1 1675954380\n"
        refused = client.post("/api/write/", content=line * 4)
        assert refused.status_code == 413 and refused.json()["error"] == (
            "request body larger than 200 bytes (the limit set by `metric-store.max-write-bytes`)")
        streamed = client.post("/api/write/", content=iter([line] * 4))  # chunked: counted as it arrives
        assert streamed.status_code == 413
        query = client.post("/api/query/", content=b" " * 101)
        assert query.status_code == 413 and "`main.max-body-bytes`" in query.json()["error"]
        assert client.post("/api/write/", content=line * 3).status_code == 200
        assert client.get("/api/metricstore/stats/").json()["samples_accepted"] == 3
