"""The archiver's series are float64 arrays: archive bytes and derived facts equal those of lists."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from archive.agentstate import AgentStateStore
from archive.archiver import Archiver, data_request
from archive.backends.codec import encode_data
from archive.backends.file import FileArchive
from archive.stats import energy, job_statistics, missing_metrics, series_statistics
from metricstore.settings import MetricStoreSettings
from metricstore.source import InProcessMetricSource
from metricstore.store import MetricStore
from streams.clusters import ClusterRegistry
from streams.events import job_subject, new_event
from streams.log import MemoryEventLog
from streams.runtime import AgentRunner
from tests.support.specs import find_specs

SPECS = find_specs()
START = 1_700_000_000


def as_arrays(data: Any) -> Any:
    """The same data with every series' values as float64 arrays (NaN for gaps)."""
    if isinstance(data, dict):
        return {k: (np.array([math.nan if v is None else v for v in x], np.float64) if k == "data" else as_arrays(x))
                for k, x in data.items()}
    if isinstance(data, list):
        return [as_arrays(x) for x in data]
    return data


def power(series: list[list[float | None]]) -> dict[str, Any]:
    return {"node": {"unit": {"base": "W"}, "timestep": 60,
                     "series": [{"hostname": f"h{i}", "data": d} for i, d in enumerate(series)]}}


def test_statistics_energy_and_missing_metrics_agree_for_arrays_and_lists() -> None:
    data = {"cpu_power": power([[100.1, None, 99.7, 250.25], [0.3, 0.1, math.nan]]),
            "mem_power": power([[None, None], [math.inf, None]]),
            "flops_any": power([[]])}
    config = [{"name": "cpu_power", "energy": "power"}, {"name": "mem_power", "energy": "power"},
              {"name": "flops_any"}, {"name": "ipc"}]
    arrays = as_arrays(data)
    assert job_statistics(arrays, 2) == job_statistics(data, 2)
    assert energy(arrays, config, 3600) == energy(data, config, 3600)
    assert missing_metrics(arrays, [m["name"] for m in config]) == missing_metrics(data, [m["name"] for m in config]) \
        == ["mem_power", "flops_any", "ipc"]
    values = [0.1, None, 0.2, 0.3, math.nan]
    assert series_statistics(np.array([math.nan if v is None else v for v in values])) == series_statistics(values)


def test_archived_data_json_is_byte_for_byte_the_list_encoding(tmp_path: Path) -> None:
    fritz = json.loads((SPECS / "archive" / "fritz" / "cluster.json").read_text())
    settings = MetricStoreSettings.model_validate({"checkpoints": {"directory": str(tmp_path / "ckpt")}})
    store = MetricStore(settings, [fritz], clock=lambda: START + 3600)
    lines = []
    for i in range(30):
        t = START + 60 * i + 30
        lines.append(f"cpu_load,cluster=fritz,hostname=f0101,type=node,type-id=0 value={0.1 * i} {t}")
        if i % 7:  # gaps
            lines += [f"flops_any,cluster=fritz,hostname=f0101,type=hwthread,type-id={h} value={h / 3 + i} {t}"
                      for h in range(4)]
            lines.append(f"cpu_power,cluster=fritz,hostname=f0101,type=socket,type-id=0 value={99.9 + i / 7} {t}")
    assert store.ingest_lines("\n".join(lines).encode(), None).ok
    job = {"jobId": 7, "user": "u", "project": "p", "cluster": "fritz", "numNodes": 1, "startTime": START,
           "walltime": 3600, "resources": [{"hostname": "f0101"}]}
    subject = job_subject("fritz", 7, START)
    log = MemoryEventLog()
    log.append([new_event("job.started", subject, job, source="rest:test"),
                new_event("job.stopped", subject, {"jobState": "completed", "stopTime": START + 1800,
                                                   "duration": 1800})])
    source = InProcessMetricSource(store)
    archive = FileArchive(tmp_path / "archive")
    archiver = Archiver(log, archive, source, ClusterRegistry.from_dicts([fritz]), AgentStateStore(tmp_path / "a.db"))
    AgentRunner(log, archiver).run_until_caught_up()

    request = data_request({**job, "duration": 1800})
    assert not request.as_lists and request.exact_arrays
    as_lists = source.load_job_data(dataclasses.replace(request, as_lists=True, exact_arrays=False))
    raw, gzipped = encode_data(as_lists)
    written = tmp_path / "archive" / "fritz" / "0" / "007" / str(START) / ("data.json.gz" if gzipped else "data.json")
    assert written.read_bytes() == raw
    assert any(None in s["data"] for s in as_lists["flops_any"]["core"]["series"])  # the gaps were exercised
