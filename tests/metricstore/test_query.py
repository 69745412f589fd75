"""`/api/query/` semantics against hand-computed values at every scope and aggregation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from metricstore.query import APIQueryRequest, run_query
from metricstore.store import MetricStore
from tests.metricstore.conftest import T0

FROM, TO = T0 - 27, T0 + 150  # the example job's window: 3 steps of 60 s
ACC0, ACC1 = "00000000:0E:00.0", "00000000:13:00.0"


def fill(store: MetricStore) -> None:
    """Three minutes of f0649 (hwthread h carries h + 1000k at step k) and of a0603's GPUs."""
    lines = []
    for k in range(3):
        ts = T0 + 60 * k
        lines += [f"flops_any,cluster=fritz,hostname=f0649,type=hwthread,type-id={h} value={h + 1000 * k} {ts}"
                  for h in range(72)]
        lines += [f"cpu_user,cluster=fritz,hostname=f0649,type=hwthread,type-id={h} value={h + 1000 * k} {ts}"
                  for h in range(72)]
        lines += [f"mem_bw,cluster=fritz,hostname=f0649,type=socket,type-id={s} value={10 * (s + 1)} {ts}"
                  for s in range(2)]
        lines += [f"cpu_load,cluster=fritz,hostname={h},type=node value={31.5 + k} {ts}" for h in ("f0649", "f0650")]
        lines += [f"acc_utilization,cluster=alex,hostname=a0603,type=accelerator,type-id={ACC0} value=80 {ts}",
                  f"acc_utilization,cluster=alex,hostname=a0603,type=accelerator,type-id={ACC1} value=60 {ts}",
                  f"acc_power,cluster=alex,hostname=a0603,type=accelerator,type-id={ACC0} value=200 {ts}",
                  f"acc_power,cluster=alex,hostname=a0603,type=accelerator,type-id={ACC1} value=100 {ts}"]
    report = store.ingest_lines(("\n".join(lines) + "\n").encode())
    assert report.ok and report.dropped_unknown_metric == 0


def query(store: MetricStore, queries: list[dict[str, Any]], cluster: str = "fritz",
          **options: Any) -> dict[str, Any]:
    body = {"cluster": cluster, "from": FROM, "to": TO, "queries": queries, **options}
    return run_query(store, APIQueryRequest.model_validate(body))


def data_of(entry: dict[str, Any]) -> list[float]:
    assert "error" not in entry, entry
    return [float(v) for v in entry["data"]]


HW = [str(h) for h in range(72)]
SUM = sum(range(72))  # 2556


@pytest.mark.parametrize(("q", "expected"), [
    ({"metric": "flops_any", "host": "f0649"}, [[SUM + 72000 * k for k in range(3)]]),
    ({"metric": "flops_any", "host": "f0649", "type": "hwthread", "type-ids": HW, "aggreg": True},
     [[SUM + 72000 * k for k in range(3)]]),
    ({"metric": "flops_any", "host": "f0649", "type": "hwthread", "type-ids": HW[:36], "aggreg": True},
     [[630 + 36000 * k for k in range(3)]]),  # socket 0 from hwthreads
    ({"metric": "flops_any", "host": "f0649", "type": "hwthread", "type-ids": HW[18:36], "aggreg": True},
     [[477 + 18000 * k for k in range(3)]]),  # memoryDomain 1
    ({"metric": "flops_any", "host": "f0649", "type": "hwthread", "type-ids": ["5", "70"], "aggreg": False},
     [[5 + 1000 * k for k in range(3)], [70 + 1000 * k for k in range(3)]]),  # per hwthread/core
    ({"metric": "cpu_user", "host": "f0649"}, [[35.5 + 1000 * k for k in range(3)]]),  # avg
    ({"metric": "cpu_user", "host": "f0649", "type": "hwthread", "type-ids": HW[36:], "aggreg": True},
     [[53.5 + 1000 * k for k in range(3)]]),
    ({"metric": "mem_bw", "host": "f0649"}, [[30.0] * 3]),  # socket-native summed to the node
    ({"metric": "mem_bw", "host": "f0649", "type": "socket", "type-ids": ["0", "1"], "aggreg": False},
     [[10.0] * 3, [20.0] * 3]),
    ({"metric": "cpu_load", "host": "f0649", "type": "node"}, [[31.5, 32.5, 33.5]]),
])
def test_scopes_and_aggregation(store: MetricStore, q: dict[str, Any], expected: list[list[float]]) -> None:
    fill(store)
    (entries,) = query(store, [q])["results"]
    assert [data_of(e) for e in entries] == [pytest.approx(x) for x in expected]
    for entry, series in zip(entries, expected, strict=True):
        assert entry["from"] == FROM and entry["to"] == FROM + 180 and entry["resolution"] == 60
        assert entry["avg"] == pytest.approx(sum(series) / 3)
        assert (entry["min"], entry["max"]) == (pytest.approx(min(series)), pytest.approx(max(series)))


def test_accelerator_scope(store: MetricStore) -> None:
    fill(store)
    per_gpu = {"metric": "acc_utilization", "host": "a0603", "type": "accelerator", "type-ids": [ACC0, ACC1]}
    node_avg = {**per_gpu, "aggreg": True}
    power = {"metric": "acc_power", "host": "a0603", "type": "accelerator", "type-ids": [ACC0, ACC1],
             "aggreg": True}
    gpus, util, watts = query(store, [per_gpu, node_avg, power], cluster="alex")["results"]
    assert [data_of(e) for e in gpus] == [[80.0] * 3, [60.0] * 3]
    assert data_of(util[0]) == [70.0] * 3  # acc_utilization aggregates by avg
    assert data_of(watts[0]) == [300.0] * 3  # acc_power by sum


def test_missing_hwthread_sample_is_left_out_of_the_aggregate(store: MetricStore) -> None:
    fill(store)
    store.ingest_lines(f"flops_any,cluster=fritz,hostname=f0649,type=hwthread,type-id=0 value=1 {T0 + 180}\n"
                       .encode())
    (entries,) = query(store, [{"metric": "flops_any", "host": "f0649"}], **{"from": T0, "to": T0 + 240})["results"]
    assert data_of(entries[0]) == [SUM, SUM + 72000, SUM + 144000, 1.0]


def test_errors_per_result(make_store) -> None:
    store = make_store({"metrics": {"raw": {"frequency": 60}}})
    fill(store)
    store.ingest_lines(f"raw,cluster=fritz,hostname=f0649,type=socket,type-id=0 value=1 {T0}\n"
                       f"raw,cluster=fritz,hostname=f0649,type=socket,type-id=1 value=2 {T0}\n".encode())
    results = query(store, [{"metric": "nope", "host": "f0649"}, {"metric": "cpu_load", "host": "zzz"},
                            {"metric": "raw", "host": "f0649"},
                            {"metric": "raw", "host": "f0649", "type": "socket", "type-ids": ["1"]}])["results"]
    assert [r[0].get("error") for r in results] == ["unknown metric: nope", "metric or host not found",
                                                    "invalid aggregation", None]
    bad_range = run_query(store, APIQueryRequest.model_validate(
        {"cluster": "fritz", "from": TO, "to": FROM, "queries": [{"metric": "cpu_load", "host": "f0649"}]}))
    assert bad_range["results"][0][0]["error"] == "invalid time range"


def test_padding_stats_data_flags_and_scale(store: MetricStore) -> None:
    fill(store)
    q = [{"metric": "cpu_load", "host": "f0649", "scale-by": 2}]
    padded = query(store, q, **{"from": T0 - 120})["results"][0][0]
    assert padded["from"] == T0 - 120 and math.isnan(padded["data"][0]) and math.isnan(padded["data"][1])
    assert list(padded["data"][2:]) == [63.0, 65.0, 67.0] and padded["avg"] == pytest.approx(65.0)
    trimmed = query(store, q, **{"from": T0 - 120, "with-padding": False})["results"][0][0]
    assert trimmed["from"] == T0 and list(trimmed["data"]) == [63.0, 65.0, 67.0]
    bare = query(store, q, **{"with-data": False, "with-stats": False})["results"][0][0]
    assert "data" not in bare and bare["avg"] == 0.0


def test_for_all_nodes(store: MetricStore) -> None:
    fill(store)
    answer = query(store, [], **{"for-all-nodes": ["cpu_load", "mem_bw"]})
    assert [(q["host"], q["metric"]) for q in answer["queries"]] == [
        ("f0649", "cpu_load"), ("f0649", "mem_bw"), ("f0650", "cpu_load"), ("f0650", "mem_bw")]
    assert [r[0].get("error") for r in answer["results"]] == [None, None, None, "metric or host not found"]
    assert data_of(answer["results"][2][0]) == [31.5, 32.5, 33.5]


def test_resolution_downsamples_with_lttb(store: MetricStore, clock) -> None:
    clock.now = T0 + 3600
    values = [0.0] * 60
    values[30] = 100.0
    body = "\n".join(f"cpu_load,cluster=fritz,hostname=r1 value={v} {T0 + 60 * i}" for i, v in enumerate(values))
    assert store.ingest_lines(body.encode()).accepted == 60
    q = [{"metric": "cpu_load", "host": "r1", "resolution": 600}]
    entry = query(store, q, **{"from": T0, "to": T0 + 3600})["results"][0][0]
    assert entry["resolution"] == 600 and len(entry["data"]) == 6
    assert entry["to"] == T0 + 6 * 600 and 100.0 in list(entry["data"]) and entry["max"] == 100.0
    same = query(store, [{**q[0], "resolution": 30}], **{"from": T0, "to": T0 + 3600})["results"][0][0]
    assert same["resolution"] == 60 and len(same["data"]) == 60


def test_lttb_with_gaps_keeps_a_regular_axis() -> None:
    from metricstore.resample import lttb

    data = np.arange(100, dtype=np.float32)
    data[10:20] = np.nan
    out, res = lttb(data, 60, 600)
    assert res == 600 and len(out) == 10 and out[-1] == 99.0 and np.isnan(out[1])
