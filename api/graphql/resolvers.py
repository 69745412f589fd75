"""Resolvers of the schema's queries and their object fields, bound to ariadne types."""

from __future__ import annotations

import re
from typing import Any

import orjson
from ariadne import ObjectType, QueryType
from graphql import GraphQLResolveInfo
from sqlalchemy import RowMapping, and_, exists, func, literal_column, or_, select

from api.graphql.clusters import cluster_objects, global_metrics
from api.graphql.context import Context, tag_object
from api.graphql.jobfilter import filter_conditions
from api.graphql.jobmetrics import job_metrics, job_stats, scoped_job_stats
from api.graphql.jobquery import (
    Page,
    QueryError,
    count_jobs,
    database_id,
    energy_footprint_values,
    footprint_values,
    has_next_page,
    job_object,
    page_of_jobs,
    resources,
)
from api.graphql.multijob import (
    footprints,
    jobs_metric_stats,
    roofline,
    running_jobs_for_histograms,
    running_metric_histogram,
)
from api.graphql.nodemetrics import cluster_metrics, node_metrics, node_metrics_list
from api.graphql.nodes import allocated_nodes, newest_states, node_conditions, state_counts, states_timed
from api.graphql.statistics import (
    COUNT_HISTOGRAMS,
    GROUP_COLUMNS,
    HISTOGRAMS,
    StatisticsRequest,
    asks_for_running_jobs,
    count_histogram,
    duration_histogram,
    filtered_cluster,
    metric_bins,
    metric_histogram,
    metric_scale,
    selected_fields,
    totals,
)
from api.graphql.viewer import Forbidden, job_visibility, may_see_other_users, require_node_access, tag_visibility
from projections import schema
from projections.queries import statistics_of

job, tag = schema.job, schema.tag

query = QueryType()
_METRIC_NAME = re.compile(r"^[a-zA-Z0-9_]+$")
job_type = ObjectType("Job")
job_result_list = ObjectType("JobResultList")
node_type = ObjectType("Node")

#: cc-backend lists a job's concurrent jobs only for shared nodes and jobs longer than this (s).
CONCURRENT_MIN_DURATION = 600
#: Overlap that does not count as running at the same time (s), as cc-backend.
CONCURRENT_SLACK = 200


def _context(info: GraphQLResolveInfo) -> Context:
    ctx: Context = info.context
    return ctx


_db_id = database_id


@query.field("jobs")
def resolve_jobs(_: Any, info: GraphQLResolveInfo, filter: list[dict[str, Any]] | None = None,
                 page: dict[str, Any] | None = None, order: dict[str, Any] | None = None) -> dict[str, Any]:
    ctx = _context(info)
    conditions = [job_visibility(ctx.viewer), *filter_conditions(filter, now=ctx.now)]
    paging = Page.of(page)
    rows = page_of_jobs(ctx.db, conditions, order, paging)
    ctx.prefetch_tags([int(r["id"]) for r in rows])
    return {"items": [job_object(r, ctx.now) for r in rows], "offset": paging.offset, "limit": paging.limit,
            "conditions": conditions, "page": paging}


@job_result_list.field("count")
def resolve_count(result: dict[str, Any], info: GraphQLResolveInfo) -> int:
    return count_jobs(_context(info).db, result["conditions"])


@job_result_list.field("hasNextPage")
def resolve_has_next_page(result: dict[str, Any], info: GraphQLResolveInfo) -> bool:
    return has_next_page(_context(info).db, result["conditions"], result["page"])


def _visible_job(ctx: Context, id_: Any) -> RowMapping:
    db_id = _db_id(id_)
    row = ctx.db.execute(select(job).where(and_(job.c.id == db_id, job_visibility(ctx.viewer)))).mappings().first()
    if row is None:
        raise QueryError(f"no job with id {db_id}")
    return row


@query.field("job")
def resolve_job(_: Any, info: GraphQLResolveInfo, id: Any) -> dict[str, Any]:
    ctx = _context(info)
    row = _visible_job(ctx, id)
    if row["hpc_user"] != ctx.viewer.username and not may_see_other_users(ctx.viewer):
        raise Forbidden("you are not allowed to see this job")
    return job_object(row, ctx.now)


@query.field("jobMetrics")
def resolve_job_metrics(_: Any, info: GraphQLResolveInfo, id: Any, metrics: list[str] | None = None,
                        scopes: list[str] | None = None, resolution: int | None = None) -> list[dict[str, Any]]:
    ctx = _context(info)
    if resolution is not None and resolution < 0:
        raise QueryError("resolution must not be negative")
    return job_metrics(ctx.services, _visible_job(ctx, id), metrics, scopes, resolution)


@query.field("jobStats")
def resolve_job_stats(_: Any, info: GraphQLResolveInfo, id: Any, metrics: list[str] | None = None
                      ) -> list[dict[str, Any]]:
    ctx = _context(info)
    row = _visible_job(ctx, id)
    archived = statistics_of(ctx.db, [int(row["id"])]).get(int(row["id"])) if row["job_state"] != "running" else None
    return job_stats(ctx.services, row, archived, metrics)


@query.field("scopedJobStats")
def resolve_scoped_job_stats(_: Any, info: GraphQLResolveInfo, id: Any, metrics: list[str] | None = None,
                             scopes: list[str] | None = None) -> list[dict[str, Any]]:
    ctx = _context(info)
    return scoped_job_stats(ctx.services, _visible_job(ctx, id), metrics, scopes)


@job_type.field("tags")
def resolve_job_tags(obj: dict[str, Any], info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    return _context(info).tags_of(int(obj["id"]))


@job_type.field("resources")
def resolve_resources(obj: dict[str, Any], _info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    return resources(obj["row"]["resources"])


@job_type.field("metaData")
def resolve_meta_data(obj: dict[str, Any], _info: GraphQLResolveInfo) -> Any:
    raw = obj["row"]["meta_data"]
    return orjson.loads(raw) if raw else None


@job_type.field("footprint")
def resolve_footprint(obj: dict[str, Any], _info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    return footprint_values(obj["row"]["footprint"])


@job_type.field("energyFootprint")
def resolve_energy_footprint(obj: dict[str, Any], _info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    return energy_footprint_values(obj["row"]["energy_footprint"])


@job_type.field("userData")
def resolve_user_data(obj: dict[str, Any], info: GraphQLResolveInfo) -> dict[str, Any] | None:
    return _user(_context(info), obj["user"])


def _user(ctx: Context, username: str) -> dict[str, Any] | None:
    if username != ctx.viewer.username and not may_see_other_users(ctx.viewer):
        raise Forbidden("forbidden")
    row = ctx.user(username)
    if row is None:
        return None
    return {"username": row["username"], "name": row["name"] or "", "email": row["email"] or ""}


@query.field("user")
def resolve_user(_: Any, info: GraphQLResolveInfo, username: str) -> dict[str, Any] | None:
    return _user(_context(info), username)


@job_type.field("concurrentJobs")
def resolve_concurrent_jobs(obj: dict[str, Any], info: GraphQLResolveInfo) -> dict[str, Any] | None:
    """Jobs sharing the job's first host while it ran (only for shared nodes and jobs over ten minutes)."""
    if obj["shared"] == "none" or obj["duration"] <= CONCURRENT_MIN_DURATION:
        return None
    hosts = resources(obj["row"]["resources"])
    if not hosts:
        return None
    ctx = _context(info)
    start = int(obj["startTime"])
    stop = int(ctx.now) if obj["state"] == "running" else start + int(obj["duration"])
    each = func.json_each(job.c.resources).table_valued("value").alias("resource")
    on_host = exists(select(1).select_from(each).where(
        literal_column("json_extract(resource.value, '$.hostname')") == hosts[0].get("hostname")))
    overlapping = or_(
        and_(job.c.job_state != "running", job.c.start_time < stop - CONCURRENT_SLACK,
             job.c.start_time + job.c.duration > start + CONCURRENT_SLACK),
        and_(job.c.job_state == "running", job.c.start_time <= stop - CONCURRENT_SLACK),
    )
    stmt = (select(job.c.id, job.c.job_id)
            .where(job.c.cluster == obj["cluster"], overlapping, on_host, job_visibility(ctx.viewer))
            .order_by(job.c.id))
    items = [{"id": row.id, "jobId": row.job_id} for row in ctx.db.execute(stmt)]
    list_query = "&".join([f"cluster={obj['cluster']}", *(f"jobId={i['jobId']}" for i in items)])
    return {"listQuery": list_query, "items": items, "count": len(items)}


@query.field("clusters")
def resolve_clusters(_: Any, info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    ctx = _context(info)
    return cluster_objects(ctx.services.clusters, ctx.db)


@query.field("tags")
def resolve_tags(_: Any, info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    ctx = _context(info)
    stmt = select(tag.c.id, tag.c.tag_type, tag.c.tag_name, tag.c.tag_scope).where(
        tag_visibility(ctx.viewer)).order_by(tag.c.id)
    return [tag_object(row) for row in ctx.db.execute(stmt)]


@query.field("globalMetrics")
def resolve_global_metrics(_: Any, info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    ctx = _context(info)
    return global_metrics(ctx.services.clusters, ctx.viewer)


@query.field("jobsStatistics")
def resolve_jobs_statistics(_: Any, info: GraphQLResolveInfo, filter: list[dict[str, Any]] | None = None,
                            metrics: list[str] | None = None, page: dict[str, Any] | None = None,
                            sortBy: str | None = None, groupBy: str | None = None,
                            numDurationBins: str | None = None, numMetricBins: int | None = None
                            ) -> list[dict[str, Any]]:
    ctx = _context(info)
    fields = selected_fields(info)
    conditions = [job_visibility(ctx.viewer), *filter_conditions(filter, now=ctx.now)]
    histograms = fields & set(HISTOGRAMS)
    if groupBy is not None and histograms:
        kind = "metric histograms" if histograms == {"histMetrics"} else "histograms"
        raise QueryError(f"{kind} only implemented without groupBy argument")
    if groupBy is not None and groupBy not in GROUP_COLUMNS:
        raise QueryError(f"cannot group by {groupBy}")
    request = StatisticsRequest(conditions, fields, ctx.now, ctx.services.settings.main.short_running_jobs_duration,
                                groupBy, sortBy, page)
    result = totals(ctx.db, request)
    if groupBy is None:
        stats = result[0]
        if "histDuration" in fields:
            stats["histDuration"] = duration_histogram(ctx.db, conditions, ctx.now, numDurationBins)
        for name, column in COUNT_HISTOGRAMS.items():
            if name in fields:
                stats[name] = count_histogram(ctx.db, conditions, column)
        if "histMetrics" in fields:
            stats["histMetrics"] = _metric_histograms(ctx, filter, conditions, metrics or [], numMetricBins)
    return result


def _metric_histograms(ctx: Context, filters: list[dict[str, Any]] | None, conditions: list[Any],
                       metrics: list[str], bins: int | None) -> list[dict[str, Any]] | None:
    """Histograms of footprint values; with a filter for exactly the running jobs, of their live values."""
    count = metric_bins(bins)
    cluster = filtered_cluster(filters)
    running = running_jobs_for_histograms(ctx.db, conditions) if asks_for_running_jobs(filters) else []
    if running is None:  # too many running jobs to load each one's data: no histograms, as in cc-backend
        return None
    out = []
    for metric in metrics:
        scale = metric_scale(ctx.services.clusters, metric, cluster) if _METRIC_NAME.match(metric) else None
        if scale is None:
            continue
        if asks_for_running_jobs(filters):
            out.append(running_metric_histogram(ctx.services, running, metric, scale.peak, scale.unit, count))
        else:
            out.append(metric_histogram(ctx.db, conditions, metric, scale, count))
    return out


def _job_conditions(ctx: Context, filters: list[dict[str, Any]] | None) -> list[Any]:
    return [job_visibility(ctx.viewer), *filter_conditions(filters, now=ctx.now)]


@query.field("jobsFootprints")
def resolve_jobs_footprints(_: Any, info: GraphQLResolveInfo, metrics: list[str],
                            filter: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    ctx = _context(info)
    return footprints(ctx.services, ctx.db, _job_conditions(ctx, filter), metrics, ctx.now)


@query.field("rooflineHeatmap")
def resolve_roofline_heatmap(_: Any, info: GraphQLResolveInfo, filter: list[dict[str, Any]], rows: int, cols: int,
                             minX: float, minY: float, maxX: float, maxY: float
                             ) -> list[list[float]]:
    ctx = _context(info)
    return roofline(ctx.services, ctx.db, _job_conditions(ctx, filter), rows, cols, (minX, minY, maxX, maxY))


@query.field("jobsMetricStats")
def resolve_jobs_metric_stats(_: Any, info: GraphQLResolveInfo, filter: list[dict[str, Any]] | None = None,
                              metrics: list[str] | None = None) -> list[dict[str, Any]]:
    ctx = _context(info)
    return jobs_metric_stats(ctx.services, ctx.db, _job_conditions(ctx, filter), metrics)


def _require_staff(ctx: Context) -> None:
    if not ctx.viewer.has_any_role({"admin", "support"}):
        raise Forbidden("you need to be administrator or support staff for this query")


@query.field("nodeMetrics")
def resolve_node_metrics(_: Any, info: GraphQLResolveInfo, cluster: str, to: int, nodes: list[str] | None = None,
                         scopes: list[str] | None = None, metrics: list[str] | None = None,
                         **time_range: int) -> list[dict[str, Any]]:
    ctx = _context(info)
    _require_staff(ctx)
    return node_metrics(ctx.services, ctx.db, cluster, nodes, scopes, metrics, time_range["from"], to)


@query.field("nodeMetricsList")
def resolve_node_metrics_list(_: Any, info: GraphQLResolveInfo, cluster: str, subCluster: str,
                              stateFilter: str, nodeFilter: str, to: int, scopes: list[str] | None = None,
                              metrics: list[str] | None = None, page: dict[str, Any] | None = None,
                              resolution: int | None = None, **time_range: int) -> dict[str, Any]:
    ctx = _context(info)
    _require_staff(ctx)
    return node_metrics_list(ctx.services, ctx.db, cluster=cluster, subcluster=subCluster, state_filter=stateFilter,
                             node_filter=nodeFilter, scopes=scopes, metrics=metrics, start=time_range["from"], stop=to,
                             page=page, resolution=resolution, resampling=ctx.services.settings.main.resampling)


@query.field("clusterMetrics")
def resolve_cluster_metrics(_: Any, info: GraphQLResolveInfo, cluster: str, to: int,
                            metrics: list[str] | None = None, **time_range: int) -> dict[str, Any]:
    ctx = _context(info)
    _require_staff(ctx)
    return cluster_metrics(ctx.services, cluster, metrics, time_range["from"], to)


def _nodes(info: GraphQLResolveInfo, filters: list[dict[str, Any]] | None, *, with_meta: bool) -> dict[str, Any]:
    ctx = _context(info)
    require_node_access(ctx.viewer)
    items = newest_states(ctx.db, node_conditions(filters), with_meta=with_meta)
    return {"items": items, "count": len(items)}


@query.field("nodes")
def resolve_nodes(_: Any, info: GraphQLResolveInfo, filter: list[dict[str, Any]] | None = None,
                  order: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nodes with their newest state, by hostname (`order` is ignored, as in cc-backend)."""
    return _nodes(info, filter, with_meta=False)


@query.field("nodesWithMeta")
def resolve_nodes_with_meta(_: Any, info: GraphQLResolveInfo, filter: list[dict[str, Any]] | None = None,
                            order: dict[str, Any] | None = None) -> dict[str, Any]:
    return _nodes(info, filter, with_meta=True)


@query.field("node")
def resolve_node(_: Any, info: GraphQLResolveInfo, id: Any) -> dict[str, Any] | None:
    ctx = _context(info)
    require_node_access(ctx.viewer)
    found = newest_states(ctx.db, [], with_meta=True, node_id=_db_id(id))
    return found[0] if found else None


@node_type.field("id")
def resolve_node_id(obj: dict[str, Any], _info: GraphQLResolveInfo) -> str:
    return str(obj["id"])


@query.field("nodeStates")
def resolve_node_states(_: Any, info: GraphQLResolveInfo, filter: list[dict[str, Any]] | None = None
                        ) -> list[dict[str, Any]]:
    ctx = _context(info)
    require_node_access(ctx.viewer)
    return state_counts(ctx.db, node_conditions(filter))


@query.field("nodeStatesTimed")
def resolve_node_states_timed(_: Any, info: GraphQLResolveInfo, type: str,
                              filter: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    ctx = _context(info)
    require_node_access(ctx.viewer)
    return states_timed(ctx.db, filter, type)


@query.field("allocatedNodes")
def resolve_allocated_nodes(_: Any, info: GraphQLResolveInfo, cluster: str) -> list[dict[str, Any]]:
    """Hosts held by running jobs per subcluster; like cc-backend, for every signed-in account."""
    return allocated_nodes(_context(info).db, cluster)


OBJECT_TYPES = [query, job_type, job_result_list, node_type]
