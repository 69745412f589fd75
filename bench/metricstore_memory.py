"""Memory per stored sample, job query latency and restore time at 1,000 nodes x 24 h.

    .venv/bin/python bench/metricstore_memory.py [--nodes 1000] [--hours 24] [--runs 7]

Data set: per node 20 node metrics + 72 hwthreads x 5 metrics, one sample per 60 s for 24 h
(547 M samples). It is loaded through the store's resolved-sample path (the ingest path minus the
line parser, which bench/metricstore_ingest.py measures), so loading takes seconds, not minutes."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
from metricstore_common import (  # noqa: E402
    FREQUENCY,
    HW_METRICS,
    HWTHREADS,
    NODE_METRICS,
    host,
    median,
    metrics_config,
    pin,
    rss_bytes,
)

from metricstore.jobdata import JobDataRequest, JobResource  # noqa: E402
from metricstore.query import APIQueryRequest, run_query  # noqa: E402
from metricstore.settings import MetricStoreSettings  # noqa: E402
from metricstore.source import InProcessMetricSource  # noqa: E402
from metricstore.store import MetricStore  # noqa: E402


def make_store(directory: str) -> MetricStore:
    settings = MetricStoreSettings.model_validate({
        "metrics": metrics_config(), "retention-in-memory": "25h",
        "checkpoints": {"directory": directory, "interval": "1000h", "restore": "48h"},
        "cleanup": {"interval": "1000h"}})
    return MetricStore(settings, [], clock=time.time)


def fill(store: MetricStore, nodes: int, start: int, steps: int) -> int:
    """Define every series, then write one time step for all of them per call."""
    with store.lock:
        for i in range(nodes):
            for m in NODE_METRICS:
                store.define_row("bench", FREQUENCY, host(i), "", m)
            for m in HW_METRICS:
                for t in range(HWTHREADS):
                    store.define_row("bench", FREQUENCY, host(i), f"hwthread{t}", m)
    rows = np.arange(store.blocks[0].nrows, dtype=np.int64)
    rng = np.random.default_rng(1)
    base = rng.random(len(rows), dtype=np.float32) * 100
    for k in range(steps):
        with store.lock:
            store.write_samples(0, rows, np.full(len(rows), start + FREQUENCY * k, np.int64), base + k)
    return len(rows) * steps


def query_latency(store: MetricStore, nodes: int, start: int, stop: int, runs: int) -> dict[str, float]:
    source = InProcessMetricSource(store)
    out: dict[str, float] = {}
    for n in sorted({1, min(64, nodes)}):
        for as_lists in (True, False):
            req = JobDataRequest(cluster="bench", resources=tuple(JobResource(host(i)) for i in range(n)),
                                 start=start, stop=stop, scopes=("node",), as_lists=as_lists)
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                result = source.load_job_data(req)
                times.append(time.perf_counter() - began)
            assert len(result) == len(NODE_METRICS) + len(HW_METRICS)
            assert len(result["hw_m0"]["node"]["series"]) == n
            kind = "lists" if as_lists else "arrays"
            out[f"job_query_ms_{n}_nodes_24h_node_scope_25_metrics_{kind}"] = round(median(times) * 1000, 1)
        api = APIQueryRequest.model_validate({
            "cluster": "bench", "from": start, "to": stop, "queries": [
                {"metric": m, "host": host(i)} for i in range(n) for m in NODE_METRICS + HW_METRICS]})
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            run_query(store, api)
            times.append(time.perf_counter() - began)
        out[f"api_query_ms_{n}_nodes_24h_all_25_metrics"] = round(median(times) * 1000, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    pin(1)
    steps = args.hours * 3600 // FREQUENCY
    start = (int(time.time()) - args.hours * 3600) // FREQUENCY * FREQUENCY
    results: dict[str, object] = {"cpus": os.cpu_count(), "nodes": args.nodes, "hours": args.hours}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        gc.collect()
        rss0 = rss_bytes()
        store = make_store(tmp)
        samples = fill(store, args.nodes, start, steps)
        gc.collect()
        rss1 = rss_bytes()
        results.update(samples=samples, series=store.blocks[0].nrows,
                       rss_bytes_per_sample=round((rss1 - rss0) / samples, 3),
                       buffer_bytes_per_sample=round(store.memory_bytes() / samples, 3))
        print(json.dumps(results), flush=True)
        results.update(query_latency(store, args.nodes, start, start + steps * FREQUENCY, args.runs))
        print(json.dumps(results), flush=True)
        store.start()
        began = time.perf_counter()
        store.checkpoint()
        results["snapshot_seconds"] = round(time.perf_counter() - began, 2)
        store.close()
        del store
        gc.collect()
        restores = []
        for _ in range(3):
            again = make_store(tmp)
            began = time.perf_counter()
            again.start()
            restores.append(time.perf_counter() - began)
            assert again.blocks[0].nrows == results["series"]
            again.close()
            del again
            gc.collect()
        results["restore_seconds"] = round(median(restores), 2)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
