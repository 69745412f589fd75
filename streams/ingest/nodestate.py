"""The node-state intake: scheduler reports of node states become `node.states_reported` events.

REST (`/api/nodestate/`) and NATS (`subject-node-state`) both call `NodeStateIntake.report`. The
scheduler state, the subcluster and the health state are all decided here, at intake, and carried
in the event: the projection then only copies them, so a replay years later gives the same rows
without a metric store or the cluster files of that time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from streams.events import new_event
from streams.events.bounds import Count, HostName, Name, NonNegativeInt64
from streams.events.payloads import MonitoringState, NodeStatesReportedV1, SchedulerState
from streams.ingest.outcomes import Accepted, Invalid
from streams.ingest.requests import InvalidRequest, check_payload, describe
from streams.log import EventLog

log = logging.getLogger(__name__)

HEALTH_STATES: frozenset[str] = frozenset({"full", "partial", "failed"})


def determine_state(states: Iterable[str]) -> SchedulerState:
    """One scheduler state from the reported list, by cc-backend's priority (case-insensitive).

    allocated > reserved > (idle and down: down) > idle > down > mixed; anything else is unknown.
    Slurm flags such as DRAIN or NOT_RESPONDING carry no state of their own.
    """
    present = {s.lower() for s in states}
    if "allocated" in present:
        return "allocated"
    if "reserved" in present:
        return "reserved"
    if "idle" in present:
        return "down" if "down" in present else "idle"
    if "down" in present:
        return "down"
    if "mixed" in present:
        return "mixed"
    return "unknown"


class NodeHealth(Protocol):
    """The health port: which of a node's expected metrics the metric store misses or has stale.

    Returns `(state, {"missing": [...], "degraded": [...]})`, state one of full, partial, failed.
    """

    def node_health(self, cluster: str, hostname: str) -> tuple[str, dict[str, Any]]: ...


class Clusters(Protocol):
    """What node-state intake needs of the cluster registry."""

    def has(self, name: str) -> bool: ...

    def subcluster_of(self, cluster: str, hostname: str) -> str | None: ...

    def metric_config(self, cluster: str, subcluster: str | None = None) -> list[dict[str, Any]]: ...


class NoMetricsHealth:
    """The health port without a metric source: what cc-backend reports for a host without data.

    Every metric of the host's subcluster is missing, so the node is `failed`.
    """

    def __init__(self, clusters: Clusters) -> None:
        self.clusters = clusters

    def node_health(self, cluster: str, hostname: str) -> tuple[str, dict[str, Any]]:
        subcluster = self.clusters.subcluster_of(cluster, hostname)
        try:
            names = sorted({str(m["name"]) for m in self.clusters.metric_config(cluster, subcluster)})
        except KeyError:
            names = []
        return "failed", {"missing": names, "degraded": []}


class _Strict(BaseModel):
    # Go's decoder with DisallowUnknownFields, as cc-backend decodes these bodies.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NodeIn(_Strict):
    """cc-lib's `schema.NodePayload`."""

    hostname: HostName
    states: list[Name] | None = None
    cpusAllocated: Count = 0
    memoryAllocated: NonNegativeInt64 = 0
    gpusAllocated: Count = 0
    jobsRunning: Count = 0


class NodeStatesRequest(_Strict):
    """cc-backend's `UpdateNodeStatesRequest`."""

    cluster: Name = ""
    nodes: list[NodeIn] | None = None


def parse_report(raw: bytes | str | dict[str, Any]) -> NodeStatesRequest:
    """Decode and validate a node-state body strictly; Invalid names what is wrong."""
    try:
        if isinstance(raw, dict):
            return NodeStatesRequest.model_validate(raw)
        return NodeStatesRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise Invalid(f"parsing request body failed: {describe(exc)}") from None


def _health_of(health: NodeHealth, fallback: NodeHealth, cluster: str, hostname: str) -> tuple[str, Any]:
    try:
        state, metrics = health.node_health(cluster, hostname)
    except Exception as exc:  # a broken metric source must not lose the scheduler's report
        log.warning("node health of %s/%s failed, reporting it as without data: %s", cluster, hostname, exc)
        return fallback.node_health(cluster, hostname)
    if state not in HEALTH_STATES:
        log.warning("node health of %s/%s: unknown state %r, reporting it as failed", cluster, hostname, state)
        return "failed", metrics
    return state, metrics


def resolve_report(
    request: NodeStatesRequest, clusters: Clusters, health: NodeHealth, observed_at: int
) -> dict[str, Any]:
    """The `node.states_reported` payload: states decided, hosts resolved, health asked (not for down nodes).

    A host reported twice in one request counts once, with its last entry. Down nodes are not health
    checked and count as `full`, as in cc-backend: no metrics are expected from them.
    """
    fallback = NoMetricsHealth(clusters)
    latest: dict[str, NodeIn] = {}
    for node in request.nodes or []:
        latest.pop(node.hostname, None)
        latest[node.hostname] = node
    nodes: list[dict[str, Any]] = []
    unknown: list[str] = []
    for hostname, node in latest.items():
        subcluster = clusters.subcluster_of(request.cluster, hostname)
        if subcluster is None:
            unknown.append(hostname)
            continue
        state = determine_state(node.states or [])
        health_state: MonitoringState = "full"
        metrics: dict[str, list[str]] | None = None
        if state != "down":
            raw_state, raw_metrics = _health_of(health, fallback, request.cluster, hostname)
            health_state = raw_state  # type: ignore[assignment]  # checked against HEALTH_STATES
            metrics = _clean_metrics(raw_metrics)
        nodes.append({
            "hostname": hostname,
            "subCluster": subcluster,
            "states": list(node.states or []),
            "nodeState": state,
            "healthState": health_state,
            "healthMetrics": metrics,
            "cpusAllocated": node.cpusAllocated,
            "memoryAllocated": node.memoryAllocated,
            "gpusAllocated": node.gpusAllocated,
            "jobsRunning": node.jobsRunning,
        })
    data = {"cluster": request.cluster, "timeStamp": observed_at, "nodes": nodes, "unknownHosts": unknown}
    return NodeStatesReportedV1.model_validate(data).model_dump(mode="json")


def _clean_metrics(value: Any) -> dict[str, list[str]] | None:
    """The health port's metrics as `{key: [names]}`; anything else is dropped (it is advisory)."""
    if not isinstance(value, dict):
        return None
    return {str(k): [str(x) for x in v] for k, v in value.items() if isinstance(v, list | tuple)}


class NodeStateIntake:
    """Turns node-state reports into `node.states_reported` events, one per report."""

    def __init__(self, log_: EventLog, clusters: Clusters, health: NodeHealth | None = None) -> None:
        self.log = log_
        self.clusters = clusters
        self.health: NodeHealth = health or NoMetricsHealth(clusters)

    async def report(
        self,
        body: bytes | str | dict[str, Any],
        *,
        source: str,
        observed_at: int,
        event_id: str | None = None,
    ) -> Accepted:
        """Accept a report, or raise Invalid. `event_id` makes redelivery of the same report a no-op."""
        request = parse_report(body)
        if not request.cluster:
            raise Invalid("the field 'cluster' is required")
        if not self.clusters.has(request.cluster):
            raise Invalid(f"no such cluster: {request.cluster}")
        subject = f"nodes/{request.cluster}"
        if not request.nodes:
            return Accepted(subject, 0)  # cc-backend accepts an empty report; there is nothing to record
        if event_id is not None and (known := self.log.get(event_id)) is not None:
            return Accepted(known.subject, known.position or 0, repeated=True)
        data = await asyncio.to_thread(resolve_report, request, self.clusters, self.health, observed_at)
        if data["unknownHosts"]:
            log.warning(
                "node state report for %s names %d host(s) no subcluster lists, not stored: %s",
                request.cluster, len(data["unknownHosts"]), ", ".join(data["unknownHosts"][:20]),
            )
        try:
            check_payload("node.states_reported", 1, data)
        except InvalidRequest as exc:
            raise Invalid(str(exc)) from None
        event = new_event("node.states_reported", subject, data, id=event_id, source=source)
        [result] = await self.log.append_async([event])
        return Accepted(subject, result.position, repeated=result.duplicate)
