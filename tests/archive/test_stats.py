"""Statistics, footprint and energy checked against hand computation and cc-backend's archived values."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from archive.stats import energy, footprint, job_statistics, missing_metrics, series_statistics
from tests.support.specs import find_specs

SPECS = find_specs()


def node(series: list[tuple[str, list[float | None]]], unit: dict[str, str] | None = None) -> dict[str, object]:
    return {"node": {"unit": unit or {"base": "W"}, "timestep": 60,
                     "series": [{"hostname": h, "data": d} for h, d in series]}}


def test_series_statistics_skip_gaps() -> None:
    assert series_statistics([1.0, None, 3.0, math.nan]) == {"avg": 2.0, "min": 1.0, "max": 3.0}
    assert series_statistics([None, math.nan]) is None


def test_job_statistics_by_hand() -> None:
    data = {"flops_any": node([("a", [1.0, 3.0]), ("b", [10.0, None, 20.0])], {"base": "F/s", "prefix": "G"})}
    stats = job_statistics(data, num_nodes=2)
    # avg = (2 + 15) / 2 nodes, min over node minima, max over node maxima
    assert stats == {"flops_any": {"unit": {"base": "F/s", "prefix": "G"}, "avg": 8.5, "min": 1.0, "max": 20.0}}


def test_job_statistics_reproduce_cc_backend_archive() -> None:
    job = SPECS / "archive" / "emmy" / "1403" / "244" / "1608923076"
    data = json.loads(gzip.decompress((job / "data.json.gz").read_bytes()))
    meta = json.loads((job / "meta.json").read_text())
    stats = job_statistics(data, meta["numNodes"])
    for metric in ("cpu_load", "flops_any", "mem_bw", "mem_used", "clock"):
        assert stats[metric]["avg"] == pytest.approx(meta["statistics"][metric]["avg"], abs=0.02), metric
        assert stats[metric]["min"] == pytest.approx(meta["statistics"][metric]["min"], abs=0.02), metric
        assert stats[metric]["max"] == pytest.approx(meta["statistics"][metric]["max"], abs=0.02), metric


def test_footprint_uses_each_metrics_stat_type() -> None:
    stats = {"flops_any": {"avg": 5.0, "min": 1.0, "max": 9.0}, "mem_used": {"avg": 3.0, "min": 1.0, "max": 7.0}}
    config = [{"name": "flops_any", "footprint": "avg"}, {"name": "mem_used", "footprint": "max"},
              {"name": "ipc", "footprint": "avg"}, {"name": "clock"}]
    assert footprint(stats, config) == {"flops_any_avg": 5.0, "mem_used_max": 7.0}


def test_energy_integrates_power_over_duration() -> None:
    data = {"cpu_power": node([("a", [100.0, 300.0]), ("b", [50.0, None])]), "mem_power": node([("a", [36.0])])}
    config = [{"name": "cpu_power", "energy": "power"}, {"name": "mem_power", "energy": "power"},
              {"name": "flops_any"}]
    per_metric, total = energy(data, config, duration=3600)
    # a: mean 200 W, b: mean 50 W, for one hour: 250 Wh = 0.25 kWh; mem: 36 W for an hour
    assert per_metric == {"cpu_power": 0.25, "mem_power": 0.036}
    assert total == pytest.approx(0.286)


def test_missing_metrics() -> None:
    data = {"a": node([("h", [1.0])]), "b": node([("h", [None])])}
    assert missing_metrics(data, ["a", "b", "c"]) == ["b", "c"]
