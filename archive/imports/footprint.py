"""Facts derived from a job's statistics at import: per-metric statistics, footprint and energy.

These follow cc-backend's importer (`importer.go`): footprint values are `<metric>_<stat>` of the
subcluster's footprint metrics, energy is the `power` metrics' average x nodes x hours, in kWh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from archive.stats import job_statistics

#: The four metrics cc-backend's job table had as columns before footprints were configurable
#: (schema migration 8 turned them into the footprint). Clusters whose cluster.json names no
#: footprint metrics (emmy in the reference archive) get these, so their jobs still have one.
LEGACY_FOOTPRINT = (("cpu_load", "avg"), ("flops_any", "avg"), ("mem_bw", "avg"), ("mem_used", "max"))
_STATS = ("avg", "min", "max")
_ENERGY_KINDS = ("power", "energy")


def _number(value: Any) -> float | None:
    if type(value) is float:  # the usual case, answered first
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """isinstance(value, Mapping), answering for dicts (all that JSON gives) without the slow ABC check."""
    return type(value) is dict or isinstance(value, Mapping)


def footprint_metrics(metric_config: Sequence[Mapping[str, Any]] | None) -> list[tuple[str, str]]:
    """(metric, statistic) pairs of a subcluster's footprint; the legacy set when none is configured."""
    configured = [
        (str(m["name"]), str(m["footprint"])) for m in metric_config or () if m.get("footprint") in _STATS
    ]
    return configured or list(LEGACY_FOOTPRINT)


@dataclass(frozen=True)
class FootprintRules:
    """A subcluster's footprint and energy metrics, picked out of its metricConfig once.

    An import derives both for every job, and walking a metricConfig of dozens of metrics per job
    cost more than the arithmetic; the rules depend only on the subcluster.
    """

    #: (metric, statistic, `<metric>_<statistic>`) per footprint metric, in metricConfig order.
    footprint_metrics: tuple[tuple[str, str, str], ...]
    #: (metric, `power` or `energy`) per energy metric, in metricConfig order.
    energy_metrics: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, metric_config: Sequence[Mapping[str, Any]] | None) -> FootprintRules:
        return cls(
            tuple((metric, stat, f"{metric}_{stat}") for metric, stat in footprint_metrics(metric_config)),
            tuple((str(m["name"]), m["energy"]) for m in metric_config or () if m.get("energy") in _ENERGY_KINDS),
        )

    def footprint(self, statistics: Mapping[str, Any]) -> dict[str, float]:
        """`{"<metric>_<stat>": value}` for the footprint metrics the statistics have.

        cc-backend writes 0.0 for a footprint metric without statistics; leaving it out keeps "not
        measured" apart from "measured zero".
        """
        out: dict[str, float] = {}
        for metric, stat, name in self.footprint_metrics:
            entry = statistics.get(metric)
            value = _number(entry.get(stat)) if is_mapping(entry) else None
            if value is not None:
                out[name] = value
        return out

    def energy(self, statistics: Mapping[str, Any], num_nodes: int, duration: int) -> tuple[dict[str, float], float]:
        """(energy footprint in kWh per `energy: power` metric, their total), rounded to 2 digits as cc-backend does.

        Metrics configured as `energy: energy` (counters in joules) need a sum statistic that archives
        do not keep; cc-backend reports 0 for them and so does this.
        """
        per_metric: dict[str, float] = {}
        for name, kind in self.energy_metrics:
            value = 0.0
            entry = statistics.get(name)
            avg = _number(entry.get("avg")) if is_mapping(entry) else None
            if kind == "power" and avg is not None:
                # W x nodes x s / 3600 / 1000 = kWh; the node average already accounts for shared nodes.
                value = round(avg * num_nodes * duration / 3600.0 / 1000.0, 2)
            per_metric[name] = value
        return per_metric, round(sum(per_metric.values()), 2)


def footprint(statistics: Mapping[str, Any], metric_config: Sequence[Mapping[str, Any]] | None) -> dict[str, float]:
    """`FootprintRules.footprint` for a metricConfig used once."""
    return FootprintRules.of(metric_config).footprint(statistics)


def energy(
    statistics: Mapping[str, Any],
    metric_config: Sequence[Mapping[str, Any]] | None,
    num_nodes: int,
    duration: int,
) -> tuple[dict[str, float], float]:
    """`FootprintRules.energy` for a metricConfig used once."""
    return FootprintRules.of(metric_config).energy(statistics, num_nodes, duration)


def statistics_from_data(data: Mapping[str, Any], num_nodes: int) -> dict[str, Any]:
    """Per-metric statistics from data.json, for archives whose meta.json lacks them.

    The archiver's own computation (`archive.stats.job_statistics`, cc-backend's rules), so an
    imported job and a freshly archived one get the same numbers.
    """
    return job_statistics(data, num_nodes)
