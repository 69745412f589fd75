"""cc-metric-store's `/api/query/` semantics over the store: selectors, aggregation, stats, resampling."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from metricstore.clusters import MetricInfo
from metricstore.resample import lttb, lttb_length
from metricstore.store import Levels, MetricStore


class QueryError(ValueError):
    """A query that cannot be answered; reported per result, as cc-metric-store does."""


def _ids(value: Any) -> Any:
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


class APIQuery(BaseModel):
    """One query of a request (cc-metric-store's `APIQuery`)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    metric: str = Field(min_length=1)
    host: str = Field(min_length=1)
    type: str | None = None
    subtype: str | None = None
    type_ids: list[str] | None = Field(None, alias="type-ids")
    subtype_ids: list[str] | None = Field(None, alias="subtype-ids")
    resolution: int = Field(0, ge=0)
    scale_by: float = Field(0, alias="scale-by")
    aggreg: bool = False

    _coerce_ids = field_validator("type_ids", "subtype_ids", mode="before")(_ids)

    def as_response(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, "host": self.host, "resolution": self.resolution,
                               "aggreg": self.aggreg}
        if self.type is not None:
            out["type"] = self.type
        if self.type_ids:
            out["type-ids"] = self.type_ids
        return out


class APIQueryRequest(BaseModel):
    """A `/api/query/` body. Stats, data and padding default to true, as in cc-metric-store."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    cluster: str = Field(min_length=1)
    queries: list[APIQuery] = Field(default_factory=list)
    for_all_nodes: list[str] | None = Field(None, alias="for-all-nodes")
    from_: int = Field(alias="from")
    to: int
    with_stats: bool = Field(True, alias="with-stats")
    with_data: bool = Field(True, alias="with-data")
    with_padding: bool = Field(True, alias="with-padding")


def find_levels(levels: Levels, prefix: str) -> list[tuple[int, int]]:
    """cc-metric-store's findBuffers: the buffer at `prefix`, else the shallowest buffers below it."""
    hit = levels.get(prefix)
    if hit is not None:
        return [hit]
    below = [lvl for lvl in levels if lvl.startswith(prefix + "/")] if prefix else [lvl for lvl in levels if lvl]
    chosen = set(below)
    return [levels[lvl] for lvl in below if (lvl.rsplit("/", 1)[0] if "/" in lvl else "") not in chosen]


def select_rows(store: MetricStore, cluster: str, host: str, metric: str,
                prefixes: list[str]) -> tuple[int, np.ndarray]:
    """(block id, rows) answering a selector; caller holds the store lock."""
    levels = store.levels(cluster, host, metric)
    found: list[tuple[int, int]] = []
    if levels:
        for prefix in prefixes:
            found.extend(find_levels(levels, prefix))
    if not found:
        raise QueryError("metric or host not found")
    return found[0][0], np.fromiter((r for _b, r in found), np.int64, len(found))


def aggregate(values: np.ndarray, aggregation: str) -> np.ndarray:
    """Combine rows into one series; missing values are left out, an all-missing step stays NaN."""
    if values.shape[0] == 1:
        return values[0]
    if aggregation not in ("sum", "avg"):
        raise QueryError("invalid aggregation")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if aggregation == "avg":
            return np.nanmean(values, axis=0).astype(np.float32)
        counts = np.count_nonzero(~np.isnan(values), axis=0)
        return np.where(counts > 0, np.nansum(values, axis=0), np.nan).astype(np.float32)


def stats(data: np.ndarray) -> tuple[float, float, float]:
    """(avg, min, max) over the present values; NaN when there are none."""
    present = data[~np.isnan(data)]
    if present.size == 0:
        return float("nan"), float("nan"), float("nan")
    return float(present.astype(np.float64).mean()), float(present.min()), float(present.max())


def _selector_groups(q: APIQuery) -> list[list[str]]:
    """Level prefixes per result: one group when aggregating or at node level, else one per id."""
    if q.type is None or q.type == "node":
        return [[""]]
    types = [q.type + i for i in q.type_ids or []]
    if q.subtype is not None:
        subs = [q.subtype + i for i in q.subtype_ids or []]
        types = [f"{t}/{s}" for t in types for s in subs]
    return [types] if q.aggreg else [[t] for t in types]


class LimitExceeded(ValueError):
    """A request over one of the store's size limits; answered 400 with the setting named."""


#: Values copied out of the store per hold of its lock when a series is read: long or wide reads (a
#: year of one series, 72 hardware threads summed) go in slices, so ingest waits for one slice at most
#: and a slice is all the raw data a read holds at once (4 MiB of float32).
READ_SLICE_VALUES = 1 << 20


@dataclass(slots=True)
class Planned:
    """One result entry, located before anything is read: rows of a block from `start`, `steps` values;
    or the error cc-metric-store reports in its place."""

    query: APIQuery
    error: str | None = None
    info: MetricInfo | None = None
    bid: int = -1
    rows: np.ndarray | None = None
    start: int = 0
    steps: int = 0


@dataclass(slots=True)
class QueryPlan:
    """What a request will read: per query its entries, and the `queries` echoed for `for-all-nodes`."""

    request: APIQueryRequest
    results: list[list[Planned]] = field(default_factory=list)
    extra: list[dict[str, Any]] | None = None


def _locate(store: MetricStore, req: APIQueryRequest, q: APIQuery, prefixes: list[str]) -> Planned:
    """Where an entry's values are, with `from` moved up to the oldest slot the block holds: before it
    nothing exists (a `from` of 0 would otherwise pad 30 M steps with nulls), and `to` cut after the
    newest slot, as every read is."""
    if req.from_ > req.to:
        return Planned(q, "invalid time range")
    info = store.metric_info(req.cluster, q.metric)
    if info is None:
        return Planned(q, f"unknown metric: {q.metric}")
    with store.lock:
        try:
            bid, rows = select_rows(store, req.cluster, q.host, q.metric, prefixes)
        except QueryError as exc:
            return Planned(q, str(exc))
        steps = store.steps(bid, rows, req.from_, req.to)
        oldest = store.blocks[bid].oldest_slot()
        first = int(store.first_slots(bid, rows, req.from_).max())
    if len(rows) > 1 and info.aggregation not in ("sum", "avg"):
        return Planned(q, "invalid aggregation")
    skip = steps if oldest is None else min(steps, max(0, oldest - first))
    return Planned(q, None, info, bid, rows, req.from_ + skip * info.frequency, steps - skip)


def plan_query(store: MetricStore, req: APIQueryRequest) -> QueryPlan:
    """Locate every entry of a request and check its size against the store's limits (LimitExceeded)."""
    plan = QueryPlan(req)
    queries = list(req.queries)
    if req.for_all_nodes is not None:
        extra = [APIQuery(metric=m, host=h) for h in store.hosts(req.cluster) for m in req.for_all_nodes]
        queries.extend(extra)
        plan.extra = [q.as_response() for q in extra]
    per_series, per_request = store.settings.max_points_per_series, store.settings.max_points_per_request
    total = 0
    for n, q in enumerate(queries):
        entries = [_locate(store, req, q, prefixes) for prefixes in _selector_groups(q)]
        for entry in entries:
            if entry.info is None:
                continue
            points = lttb_length(entry.steps, entry.info.frequency, q.resolution)
            if points > per_series:
                raise LimitExceeded(
                    f"query {n} ({q.metric} of {q.host}) asks for {points:,} points in one series, more than "
                    f"metric-store.max-points-per-series ({per_series:,}): ask for a shorter time range or a "
                    "coarser resolution")
            total += points
        plan.results.append(entries)
    if total > per_request:
        raise LimitExceeded(
            f"the request asks for {total:,} points, more than metric-store.max-points-per-request "
            f"({per_request:,}): split it, or ask for shorter time ranges or a coarser resolution")
    return plan


def _values(store: MetricStore, entry: Planned) -> np.ndarray:
    """The entry's series, its rows combined; copied out of the store in slices, combined outside the lock."""
    assert entry.info is not None and entry.rows is not None
    rows, f, aggregation = entry.rows, entry.info.frequency, entry.info.aggregation
    width = max(1, READ_SLICE_VALUES // len(rows))
    if entry.steps <= width:
        with store.lock:
            values, _steps = store.read(entry.bid, rows, entry.start, entry.start + entry.steps * f)
        return aggregate(values, aggregation)
    out = np.empty(entry.steps, np.float32)
    for a in range(0, entry.steps, width):
        n = min(width, entry.steps - a)
        with store.lock:
            values, _steps = store.read(entry.bid, rows, entry.start + a * f, entry.start + (a + n) * f)
        out[a : a + n] = aggregate(values, aggregation)
    return out


def read_entry(store: MetricStore, req: APIQueryRequest, entry: Planned) -> dict[str, Any]:
    """One result entry (cc-metric-store's APIMetricData) with float NaN for gaps."""
    if entry.error is not None or entry.info is None:
        return {"error": entry.error, "from": 0, "to": 0, "resolution": 0}
    info, q = entry.info, entry.query
    data = _values(store, entry)
    start = entry.start
    if not req.with_padding:
        present = np.nonzero(~np.isnan(data))[0]
        skip = int(present[0]) if present.size else len(data)
        data, start = data[skip:], start + skip * info.frequency
    data, resolution = lttb(data, info.frequency, q.resolution)
    result: dict[str, Any] = {"from": start, "to": start + len(data) * resolution, "resolution": resolution}
    avg, lo, hi = stats(data) if req.with_stats else (0.0, 0.0, 0.0)
    scale = q.scale_by if q.scale_by not in (0, 1) else 1.0
    result.update(avg=avg * scale, min=lo * scale, max=hi * scale)
    if req.with_data:
        result["data"] = data * np.float32(scale) if scale != 1.0 else data
    return result


def run_query(store: MetricStore, req: APIQueryRequest) -> dict[str, Any]:
    """Answer a request at once: `results` has one list per query (per selector group), in order.
    The HTTP route writes the same answer entry by entry instead (api.metricstore_routes)."""
    plan = plan_query(store, req)
    response: dict[str, Any] = {}
    if plan.extra is not None:
        response["queries"] = plan.extra
    response["results"] = [[read_entry(store, req, e) for e in entries] for entries in plan.results]
    return response
