"""Facts derived from a job's statistics at import: per-metric statistics, footprint and energy.

These follow cc-backend's importer (`importer.go`): footprint values are `<metric>_<stat>` of the
subcluster's footprint metrics, energy is the `power` metrics' average x nodes x hours, in kWh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from archive.stats import job_statistics

#: The four metrics cc-backend's job table had as columns before footprints were configurable
#: (schema migration 8 turned them into the footprint). Clusters whose cluster.json names no
#: footprint metrics (emmy in the reference archive) get these, so their jobs still have one.
LEGACY_FOOTPRINT = (("cpu_load", "avg"), ("flops_any", "avg"), ("mem_bw", "avg"), ("mem_used", "max"))
_STATS = ("avg", "min", "max")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def footprint_metrics(metric_config: Sequence[Mapping[str, Any]] | None) -> list[tuple[str, str]]:
    """(metric, statistic) pairs of a subcluster's footprint; the legacy set when none is configured."""
    configured = [
        (str(m["name"]), str(m["footprint"])) for m in metric_config or () if m.get("footprint") in _STATS
    ]
    return configured or list(LEGACY_FOOTPRINT)


def footprint(statistics: Mapping[str, Any], metric_config: Sequence[Mapping[str, Any]] | None) -> dict[str, float]:
    """`{"<metric>_<stat>": value}` for the footprint metrics the statistics have.

    cc-backend writes 0.0 for a footprint metric without statistics; leaving it out keeps "not
    measured" apart from "measured zero".
    """
    out: dict[str, float] = {}
    for metric, stat in footprint_metrics(metric_config):
        entry = statistics.get(metric)
        value = _number(entry.get(stat)) if isinstance(entry, Mapping) else None
        if value is not None:
            out[f"{metric}_{stat}"] = value
    return out


def energy(
    statistics: Mapping[str, Any],
    metric_config: Sequence[Mapping[str, Any]] | None,
    num_nodes: int,
    duration: int,
) -> tuple[dict[str, float], float]:
    """(energy footprint in kWh per `energy: power` metric, their total), rounded to 2 digits as cc-backend does.

    Metrics configured as `energy: energy` (counters in joules) need a sum statistic that archives
    do not keep; cc-backend reports 0 for them and so does this.
    """
    per_metric: dict[str, float] = {}
    for m in metric_config or ():
        kind = m.get("energy")
        if kind not in ("power", "energy"):
            continue
        name = str(m["name"])
        value = 0.0
        entry = statistics.get(name)
        avg = _number(entry.get("avg")) if isinstance(entry, Mapping) else None
        if kind == "power" and avg is not None:
            # W x nodes x s / 3600 / 1000 = kWh; the node average already accounts for shared nodes.
            value = round(avg * num_nodes * duration / 3600.0 / 1000.0, 2)
        per_metric[name] = value
    return per_metric, round(sum(per_metric.values()), 2)


def statistics_from_data(data: Mapping[str, Any], num_nodes: int) -> dict[str, Any]:
    """Per-metric statistics from data.json, for archives whose meta.json lacks them.

    The archiver's own computation (`archive.stats.job_statistics`, cc-backend's rules), so an
    imported job and a freshly archived one get the same numbers.
    """
    return job_statistics(data, num_nodes)
