"""`MetricSource`: job data at every scope in-process, and the same answers over HTTP."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi import FastAPI

from api.errors import install_error_handlers
from api.metricstore_routes import build_metricstore_router
from metricstore import http_source
from metricstore.http_source import ExternalMetricStore, HttpMetricSource, MetricStoreHttpError
from metricstore.jobdata import JobDataRequest, JobResource
from metricstore.source import InProcessMetricSource, MetricSource
from metricstore.store import MetricStore
from tests.metricstore.conftest import Keys, make_auth
from tests.metricstore.test_query import ACC1, FROM, SUM, TO, fill
from tests.support.asgi import uvicorn_in_thread

SCOPES = ("node", "socket", "memoryDomain", "core", "hwthread", "accelerator")


def job(hwthreads: tuple[int, ...] | None = None, **kw: Any) -> JobDataRequest:
    options: dict[str, Any] = {"metrics": ("flops_any", "cpu_load", "mem_bw", "cpu_user"), "scopes": SCOPES, **kw}
    return JobDataRequest(cluster="fritz", resources=(JobResource("f0649", hwthreads),), start=FROM, stop=TO,
                          **options)


def data(result: dict[str, Any], metric: str, scope: str) -> list[tuple[str | None, list[float]]]:
    return [(s.get("id"), s["data"]) for s in result[metric][scope]["series"]]


def check_whole_node(result: dict[str, Any]) -> None:
    steps = range(3)
    assert data(result, "flops_any", "node") == [(None, [SUM + 72000 * k for k in steps])]
    assert data(result, "flops_any", "socket") == [("0", [630 + 36000 * k for k in steps]),
                                                   ("1", [1926 + 36000 * k for k in steps])]
    md = data(result, "flops_any", "memoryDomain")
    assert [i for i, _ in md] == ["0", "1", "2", "3"] and md[1][1] == [477 + 18000 * k for k in steps]
    core = data(result, "flops_any", "core")
    assert len(core) == 72 and core[5] == ("5", [5 + 1000 * k for k in steps])
    assert data(result, "flops_any", "hwthread")[70] == ("70", [70 + 1000 * k for k in steps])
    assert data(result, "cpu_user", "node") == [(None, [35.5 + 1000 * k for k in steps])]  # avg
    assert set(result["cpu_load"]) == {"node"}  # node-native: no finer scope
    assert set(result["mem_bw"]) == {"node", "socket"}
    assert data(result, "mem_bw", "node") == [(None, [30.0] * 3)]
    node = result["flops_any"]["node"]
    assert node["timestep"] == 60 and node["unit"] == {"base": "Flops/s", "prefix": "G"}
    stats = node["series"][0]["statistics"]
    assert stats == {"min": SUM, "avg": pytest.approx(SUM + 72000), "max": SUM + 144000}
    assert "id" not in node["series"][0] and node["series"][0]["hostname"] == "f0649"


def check_partial_and_gpu(source: MetricSource) -> None:
    part = source.load_job_data(job((0, 1, 2, 3)))
    assert data(part, "flops_any", "node") == [(None, [6 + 4000 * k for k in range(3)])]
    assert data(part, "flops_any", "socket") == [("0", [6 + 4000 * k for k in range(3)])]
    gpu = source.load_job_data(JobDataRequest(
        cluster="alex", resources=(JobResource("a0603", accelerators=(ACC1,)),), start=FROM, stop=TO,
        metrics=("acc_utilization",), scopes=("node", "accelerator")))
    assert data(gpu, "acc_utilization", "accelerator") == [(ACC1, [60.0] * 3)]
    assert data(gpu, "acc_utilization", "node") == [(None, [60.0] * 3)]


def test_in_process_source(store: MetricStore) -> None:
    fill(store)
    source: MetricSource = InProcessMetricSource(store)
    check_whole_node(source.load_job_data(job()))
    check_partial_and_gpu(source)
    resampled = source.load_job_data(job(resolution=120, scopes=("node",)))
    assert resampled["flops_any"]["node"]["timestep"] == 60  # 3 points cannot be downsampled further
    assert source.node_health("fritz", "f0649", ["cpu_load", "flops_any", "nfs4_read"]) == (
        "partial", {"missing": ["nfs4_read"], "degraded": []})
    assert source.node_health("fritz", "nohost")[0] == "failed"


@pytest.fixture
def served_store(store: MetricStore, keys: Keys) -> Iterator[str]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_metricstore_router(store, make_auth(keys)))
    with uvicorn_in_thread(app) as url:
        yield url


def test_http_source_matches_in_process(store: MetricStore, served_store: str, keys: Keys,
                                        cluster_docs: list[dict[str, Any]]) -> None:
    fill(store)
    endpoints = [ExternalMetricStore(scope="*", url=served_store, token=keys.token())]
    source = HttpMetricSource(endpoints, cluster_docs)
    try:
        check_whole_node(source.load_job_data(job()))
        check_partial_and_gpu(source)
        assert source.node_health("fritz", "f0649", ["cpu_load", "nfs4_read"]) == (
            "partial", {"missing": ["nfs4_read"], "degraded": []})
    finally:
        source.close()
    unauthorised = HttpMetricSource([ExternalMetricStore(url=served_store, token="nope")], cluster_docs)
    with pytest.raises(MetricStoreHttpError, match="HTTP 401"):
        unauthorised.load_job_data(job())


def test_endpoint_selection(cluster_docs: list[dict[str, Any]]) -> None:
    eps = [ExternalMetricStore(scope="*", url="http://any"), ExternalMetricStore(scope="fritz", url="http://f"),
           ExternalMetricStore(scope="spr1tb", url="http://s")]
    source = HttpMetricSource(eps, cluster_docs)
    assert source.endpoint("fritz").url == "http://f"
    assert source.endpoint("fritz", "spr1tb").url == "http://s"
    assert source.endpoint("alex").url == "http://any"
    with pytest.raises(LookupError):
        HttpMetricSource(eps[1:], cluster_docs).endpoint("alex")


def test_http_source_pads_a_clamped_answer_back_to_the_job_start(store: MetricStore, served_store: str, keys: Keys,
                                                                 cluster_docs: list[dict[str, Any]],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A job that began before the oldest sample the store holds: ccstream's store answers from that
    sample on (its `from` says so), and the series must still start at the job's start, as in-process."""
    fill(store)
    early = JobDataRequest(cluster="fritz", resources=(JobResource("f0649"),), start=FROM - 3 * 3600, stop=TO,
                           metrics=("flops_any", "cpu_load", "mem_bw"), scopes=("node", "socket"), as_lists=False,
                           exact_arrays=True)
    expected = InProcessMetricSource(store).load_job_data(early)
    assert len(expected["flops_any"]["node"]["series"][0]["data"]) > 3 * 60  # 3 h of leading gaps
    monkeypatch.setattr(http_source, "HTTP_BATCH_POINTS", 1)  # one query per call: the answer in pieces
    source = HttpMetricSource([ExternalMetricStore(scope="*", url=served_store, token=keys.token())], cluster_docs)
    try:
        got = source.load_job_data(early)
    finally:
        source.close()
    dumps = functools.partial(orjson.dumps, option=orjson.OPT_SERIALIZE_NUMPY)
    assert dumps(got) == dumps(expected)
    assert source.job_points(early)["flops_any"] >= len(expected["flops_any"]["node"]["series"][0]["data"])
