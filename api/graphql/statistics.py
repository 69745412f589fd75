"""`jobsStatistics`: totals, per-group totals and histograms of the jobs a filter selects (§3.5, §3.6).

The fields asked for decide what is computed, as in cc-backend: an aggregate nobody selected is not
summed, and a histogram costs a query only when it is selected. Totals in hours are rounded (cc-backend
floors them by integer division), the node, core and accelerator totals are filled without `groupBy`
too (cc-backend computes and drops them), and a job matching several tags of a `tags` filter counts once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import FieldNode, FragmentSpreadNode, GraphQLResolveInfo, InlineFragmentNode, SelectionSetNode
from sqlalchemy import Case, ColumnElement, Connection, Integer, and_, case, cast, distinct, func, select, true

from api.graphql.jobquery import QueryError
from projections import schema
from streams.clusters import ClusterRegistry

job, hpc_user = schema.job, schema.hpc_user

#: `groupBy` → the column jobs are grouped by.
GROUP_COLUMNS: dict[str, ColumnElement[Any]] = {
    "USER": job.c.hpc_user, "PROJECT": job.c.project, "CLUSTER": job.c.cluster, "SUBCLUSTER": job.c.subcluster,
}
#: `sortBy` → the field the groups are ordered by (descending).
SORT_FIELDS = {
    "TOTALWALLTIME": "totalWalltime", "TOTALJOBS": "totalJobs", "TOTALUSERS": "totalUsers",
    "TOTALNODES": "totalNodes", "TOTALNODEHOURS": "totalNodeHours", "TOTALCORES": "totalCores",
    "TOTALCOREHOURS": "totalCoreHours", "TOTALACCS": "totalAccs", "TOTALACCHOURS": "totalAccHours",
}
#: `numDurationBins` → (bin width in seconds, number of bins); anything else is 24 bins of an hour.
DURATION_BINS = {"1m": (60, 60), "10m": (600, 72), "1h": (3600, 48), "6h": (21600, 12), "12h": (43200, 14)}
DEFAULT_DURATION_BINS = (3600, 24)
COUNT_HISTOGRAMS = {"histNumNodes": job.c.num_nodes, "histNumCores": job.c.num_hwthreads, "histNumAccs": job.c.num_acc}
HISTOGRAMS = ("histDuration", *COUNT_HISTOGRAMS, "histMetrics")
DEFAULT_METRIC_BINS = 10
#: Bins of one histogram at most: a histogram wider than this is no longer a picture.
MAX_BINS = 1000


def selected_fields(info: GraphQLResolveInfo) -> set[str]:
    """Names of the fields selected directly below the field being resolved, fragments included."""
    names: set[str] = set()

    def walk(selection_set: SelectionSetNode | None) -> None:
        for node in selection_set.selections if selection_set else ():
            if isinstance(node, FieldNode):
                names.add(node.name.value)
            elif isinstance(node, InlineFragmentNode):
                walk(node.selection_set)
            elif isinstance(node, FragmentSpreadNode) and node.name.value in info.fragments:
                walk(info.fragments[node.name.value].selection_set)

    for field in info.field_nodes:
        walk(field.selection_set)
    return names


def elapsed(now: float) -> ColumnElement[Any]:
    """A job's duration so far: up to now while it runs, its stored duration after."""
    running: Case[Any] = case((job.c.job_state == "running", int(now) - job.c.start_time), else_=job.c.duration)
    return running


def _hours(seconds: ColumnElement[Any]) -> ColumnElement[Any]:
    return cast(func.round(func.coalesce(func.sum(seconds), 0) / 3600.0), Integer)


def aggregates(now: float, short_jobs_below: int) -> dict[str, ColumnElement[Any]]:
    """Every total of JobsStatistics as an SQL aggregate over the selected jobs."""
    d = elapsed(now)
    return {
        "totalJobs": func.count(),
        "totalUsers": func.count(distinct(job.c.hpc_user)),
        "totalWalltime": _hours(d),
        "totalNodes": func.coalesce(func.sum(job.c.num_nodes), 0),
        "totalNodeHours": _hours(d * job.c.num_nodes),
        "totalCores": func.coalesce(func.sum(job.c.num_hwthreads), 0),
        "totalCoreHours": _hours(d * job.c.num_hwthreads),
        "totalAccs": func.coalesce(func.sum(job.c.num_acc), 0),
        "totalAccHours": _hours(d * job.c.num_acc),
        "runningJobs": func.coalesce(func.sum(case((job.c.job_state == "running", 1), else_=0)), 0),
        "shortJobs": func.coalesce(func.sum(case((job.c.duration < short_jobs_below, 1), else_=0)), 0),
    }


def _zero_totals() -> dict[str, int]:
    return {name: 0 for name in aggregates(0, 0)}


@dataclass(frozen=True)
class StatisticsRequest:
    conditions: Sequence[ColumnElement[bool]]
    fields: set[str]
    now: float
    short_jobs_below: int
    group_by: str | None = None
    sort_by: str | None = None
    page: Mapping[str, Any] | None = None


def totals(conn: Connection, request: StatisticsRequest) -> list[dict[str, Any]]:
    """One element without `groupBy`, else one per group (sorted and paged as asked)."""
    wanted = {name: expr for name, expr in aggregates(request.now, request.short_jobs_below).items()
              if name in request.fields or SORT_FIELDS.get(request.sort_by or "") == name}
    where = and_(true(), *request.conditions)
    if request.group_by is None:
        values: dict[str, int] = {}
        if wanted:
            row = conn.execute(select(*(e.label(n) for n, e in wanted.items())).select_from(job).where(where)).one()
            values = {name: int(v or 0) for name, v in zip(wanted, row, strict=True)}
        return [{"id": "", "name": "", **_zero_totals(), **values}]
    column = GROUP_COLUMNS[request.group_by]
    stmt = (select(column.label("group_key"), *(e.label(n) for n, e in wanted.items())).select_from(job)
            .where(where, column.is_not(None)).group_by(column).order_by(column))
    groups: list[dict[str, Any]] = [
        {"id": str(r[0]), "name": "", **_zero_totals(), **{n: int(v or 0) for n, v in zip(wanted, r[1:], strict=True)}}
        for r in conn.execute(stmt)]
    if request.group_by == "USER" and "name" in request.fields:
        _fill_names(conn, groups)
    if request.sort_by is not None:
        key = SORT_FIELDS[request.sort_by]
        groups.sort(key=lambda g: g[key], reverse=True)  # stable: equal totals keep the key order
    return _page(groups, request.page)


def _fill_names(conn: Connection, groups: list[dict[str, Any]]) -> None:
    names: dict[str, str] = {}
    ids = [g["id"] for g in groups]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for username, name in conn.execute(select(hpc_user.c.username, hpc_user.c.name)
                                           .where(hpc_user.c.username.in_(chunk))):
            names[username] = name or ""
    for group in groups:
        group["name"] = names.get(group["id"], "")


def _page(groups: list[dict[str, Any]], page: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if page is None:
        return groups
    per_page, number = int(page["itemsPerPage"]), max(int(page["page"]), 1)
    if per_page == -1:
        return groups
    if per_page < 1:
        raise QueryError("invalid items-per-page value")
    return groups[(number - 1) * per_page : number * per_page]


def duration_histogram(conn: Connection, conditions: Sequence[ColumnElement[bool]], now: float,
                       bins: str | None) -> list[dict[str, int]]:
    """Every bin 1..n with its upper bound in seconds (`value`) and the jobs whose duration falls in it."""
    width, count = DURATION_BINS.get(bins or "1h", DEFAULT_DURATION_BINS)
    d = elapsed(now)
    bin_of = (d / width + 1).label("bin")
    stmt = (select(cast(bin_of, Integer).label("bin"), func.count().label("n")).select_from(job)
            .where(and_(true(), *conditions), d < width * count, d >= 0).group_by("bin"))
    counts = {int(r.bin): int(r.n) for r in conn.execute(stmt)}
    return [{"value": i * width, "count": counts.get(i, 0)} for i in range(1, count + 1)]


def count_histogram(conn: Connection, conditions: Sequence[ColumnElement[bool]], column: ColumnElement[Any]
                    ) -> list[dict[str, int]]:
    """The values that occur (ascending) and how many jobs have each; no bins without jobs."""
    value = func.coalesce(column, 0)
    stmt = (select(value.label("value"), func.count().label("n")).select_from(job).where(and_(true(), *conditions))
            .group_by(value).order_by(value))
    return [{"value": int(r.value), "count": int(r.n)} for r in conn.execute(stmt)]


@dataclass(frozen=True)
class MetricScale:
    """How a metric's footprint values are binned: against its peak, in its unit, by its footprint statistic."""

    peak: float
    unit: str
    stat: str


def metric_scale(registry: ClusterRegistry, metric: str, cluster: str | None) -> MetricScale | None:
    """The scale of `metric` on `cluster` (the filter's), else over every cluster: the highest peak, the
    unit and statistic of the first cluster that has it. None when no cluster has it with a footprint."""
    names = [cluster] if cluster is not None and registry.has(cluster) else registry.names()
    found = [m for name in names for m in (registry.get(name) or {}).get("metricConfig", ()) if m["name"] == metric]
    if not found:
        return None
    first = found[0]
    unit = first.get("unit") or {}
    peak = max(float(m.get("peak") or 0.0) for m in found)
    if peak <= 0:
        return None
    return MetricScale(peak, f"{unit.get('prefix') or ''}{unit.get('base') or ''}",
                       str(first.get("footprint") or "avg"))


def filtered_cluster(filters: Iterable[Mapping[str, Any]] | None) -> str | None:
    """The cluster of the first filter element that names one exactly."""
    for flt in filters or ():
        eq = (flt.get("cluster") or {}).get("eq")
        if eq is not None:
            return str(eq)
    return None


def metric_histogram(conn: Connection, conditions: Sequence[ColumnElement[bool]], metric: str,
                     scale: MetricScale, bins: int) -> dict[str, Any]:
    """Jobs by footprint value of `metric` in `bins` equal bins from 0 to its peak (values above it are left out)."""
    value = func.json_extract(job.c.footprint, f"$.{metric}_{scale.stat}")
    bin_of = case((value >= scale.peak, bins), else_=cast(value / scale.peak * bins, Integer) + 1)
    stmt = (select(bin_of.label("bin"), func.count().label("n")).select_from(job)
            .where(and_(true(), *conditions), func.json_valid(job.c.footprint) == 1, value.is_not(None), value >= 0,
                   value <= scale.peak)
            .group_by("bin"))
    counts = {int(r.bin): int(r.n) for r in conn.execute(stmt)}
    step = scale.peak / bins
    data = [{"bin": i, "count": counts.get(i, 0), "min": round(step * (i - 1)), "max": round(step * i)}
            for i in range(1, bins + 1)]
    return {"metric": metric, "unit": scale.unit, "stat": scale.stat, "data": data}


def metric_bins(requested: int | None) -> int:
    bins = DEFAULT_METRIC_BINS if requested is None else requested
    if not 1 <= bins <= MAX_BINS:
        raise QueryError(f"numMetricBins must be between 1 and {MAX_BINS}")
    return bins


def asks_for_running_jobs(filters: Iterable[Mapping[str, Any]] | None) -> bool:
    """cc-backend's live path: any filter element asking for exactly the running jobs."""
    return any(list(flt.get("state") or ()) == ["running"] for flt in filters or ())
