"""The vectorised job-data read (one array per metric, statistics along an axis) answers exactly what a
plain per-series computation answers: same values, same NaN handling, same statistics, same structure."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from archive.backends.codec import encode_json
from metricstore.jobdata import Group, JobDataRequest, JobResource, row_means, series_entries
from metricstore.settings import MetricStoreSettings
from metricstore.source import InProcessMetricSource
from metricstore.store import MetricStore

F = 60
T0 = 1_700_000_000 // 3600 * 3600 + 17 * F  # not on a chunk boundary
STEPS = 150  # spans three one-hour chunks
THREADS = 6
METRICS = {"load": "avg", "mem": "avg", "flops": "sum", "bw": "avg"}  # node-level, hwthread sum, hwthread avg
HW = ("flops", "bw")


def _store(directory: Path) -> MetricStore:
    settings = MetricStoreSettings.model_validate({
        "metrics": {m: {"frequency": F, "aggregation": a} for m, a in METRICS.items()},
        "retention-in-memory": "24h", "checkpoints": {"directory": str(directory)}})
    store = MetricStore(settings, [], clock=lambda: float(T0 + STEPS * F))
    rng = np.random.default_rng(7)
    with store.lock:
        for h in range(6):
            host = f"h{h}"
            if h == 5:
                continue  # asked for, never sent anything
            for metric in METRICS:
                if metric in HW:
                    if h == 4:
                        continue  # sent node metrics only
                    threads = THREADS - 2 if h == 3 else THREADS  # fewer hwthreads: the gathered path
                    levels = [f"hwthread{t}" for t in range(threads)]
                else:
                    levels = [""]
                for level in levels:
                    bid, row = store.define_row("bench", F, host, level, metric)
                    # magnitudes from 1e-6 to 1e6: float64 sums round, so summation order shows
                    values = (rng.random(STEPS) * 10.0 ** rng.uniform(-6, 6, STEPS)).astype(np.float32)
                    if h in (1, 2, 3):
                        values[rng.random(STEPS) < 0.15] = np.nan  # scattered gaps (h0, h4 have none)
                    if h == 1:
                        values[40:90] = np.nan  # a long gap
                    if h == 2 and level in ("", "hwthread1"):
                        values[:] = np.nan  # series without a single value in the window
                    keep = ~np.isnan(values)
                    times = T0 + F * np.arange(STEPS, dtype=np.int64)
                    rows = np.full(int(keep.sum()), row, np.int64)
                    store.write_samples(bid, rows, times[keep], values[keep])
    return store


def _reference(store: MetricStore, request: JobDataRequest) -> dict[str, Any]:
    """Series by series, value by value: the definition the vectorised code must match."""
    out: dict[str, Any] = {}
    for metric, aggregation in METRICS.items():
        series = []
        for res in request.resources:
            levels = store.levels("bench", res.hostname, metric)
            if not levels:
                continue
            hits = [levels[""]] if "" in levels else [levels[lvl] for lvl in levels]
            total = np.zeros(0)
            count = np.zeros(0, np.int64)
            for bid, row in hits:  # one series at a time, in level order
                values, _steps = store.read(bid, np.array([row]), request.start, request.stop)
                one = values[0].astype(np.float64)
                if len(total) == 0:
                    total, count = np.zeros(len(one)), np.zeros(len(one), np.int64)
                present = ~np.isnan(one)
                total += np.where(present, one, 0.0)
                count += present
            if len(hits) == 1:
                data = store.read(hits[0][0], np.array([hits[0][1]]), request.start, request.stop)[0][0]
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    combined = total / count if aggregation == "avg" else total
                data = np.where(count > 0, combined, np.nan).astype(np.float32)
            present = data[~np.isnan(data)]
            if present.size == 0:
                stats: dict[str, float | None] = {"min": None, "avg": None, "max": None}
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    avg = float(np.nanmean(data.astype(np.float64)))
                stats = {"min": float(present.min()), "avg": avg, "max": float(present.max())}
            values_out = [None if np.isnan(v) else float(v) for v in data]
            series.append({"hostname": res.hostname, "statistics": stats, "data": values_out})
        out[metric] = {"node": {"unit": {"base": ""}, "timestep": F, "series": series}}
    return out


@pytest.mark.parametrize("hosts", [(0, 1, 2, 3, 4, 5), (0, 1, 2), (5, 4, 2, 0), (0, 4), (0,)])
def test_vectorised_job_data_equals_per_series_computation(tmp_path: Path, hosts: tuple[int, ...]) -> None:
    store = _store(tmp_path)
    source = InProcessMetricSource(store)
    resources = tuple(JobResource(f"h{h}") for h in hosts)
    for start, stop in ((T0, T0 + STEPS * F), (T0 + 7 * F, T0 + 101 * F)):
        request = JobDataRequest(cluster="bench", resources=resources, start=start, stop=stop)
        got = source.load_job_data(request)
        want = _reference(store, request)
        assert got == want
        assert encode_json(got) == encode_json(want)
        for exact in (True, False):
            arrays = source.load_job_data(JobDataRequest(cluster="bench", resources=resources, start=start,
                                                         stop=stop, as_lists=False, exact_arrays=exact))
            assert encode_json(arrays) == encode_json(got) if exact else True
            for metric, scopes in arrays.items():
                for entry, ref in zip(scopes["node"]["series"], want[metric]["node"]["series"], strict=True):
                    assert entry["statistics"] == ref["statistics"]
                    expected = np.array([np.nan if v is None else v for v in ref["data"]])
                    assert np.array_equal(entry["data"].astype(np.float64), expected, equal_nan=True)


def test_row_means_equal_nanmean_with_and_without_gaps() -> None:
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty rows: NaN, as nanmean gives
        for shape in ((5, 1440), (3, 7), (4, 0), (1, 1)):
            wide = (rng.random(shape) * 10.0 ** rng.uniform(-6, 6, shape)).astype(np.float32).astype(np.float64)
            assert np.array_equal(row_means(wide, np.isnan(wide).any(axis=1)), np.nanmean(wide, axis=1),
                                  equal_nan=True)
            if shape[1]:
                wide[0, 0] = np.nan
                wide[-1, :] = np.nan
                assert np.array_equal(row_means(wide, np.isnan(wide).any(axis=1)), np.nanmean(wide, axis=1),
                                      equal_nan=True)


def test_series_entries_lists_hold_the_float32_values() -> None:
    data = np.array([[0.1, np.nan, 3.3], [1e-7, 2.5, 123456.789]], np.float32)

    entries = series_entries([Group("a", None, None), Group("b", None, None)], data)
    assert entries[0]["data"] == [float(np.float32(0.1)), None, float(np.float32(3.3))]
    assert entries[1]["data"] == [float(v) for v in data[1]]
    assert all(type(v) is float for v in entries[1]["data"])
