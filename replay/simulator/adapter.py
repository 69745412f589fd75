"""What a scheduler adapter sends: cc-slurm-adapter's start/stop payloads, node states, NATS lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from replay.simulator.model import SimJob
from replay.simulator.topology import Machine


def start_payload(job: SimJob, machine: Machine) -> dict[str, Any]:
    """The start_job body as cc-slurm-adapter marshals it (Go field order, nulls, metaData strings)."""
    resources = []
    for host in job.hosts:
        resource: dict[str, Any] = {"hostname": host, "hwthreads": list(job.hwthreads.get(host, ()))}
        accelerators = job.accelerators.get(host, ())
        if accelerators:
            resource["accelerators"] = list(accelerators)
        resources.append(resource)
    submitted = datetime.fromtimestamp(job.submit_time, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    body: dict[str, Any] = {
        "cluster": machine.cluster,
        "subCluster": "",
        "partition": job.partition,
        "project": job.project,
        "user": job.user,
        "shared": job.shared,
        "jobState": "",
        "resources": resources,
        "energyFootprint": None,
        "footprint": None,
        "metaData": {
            "jobName": f"{job.app}-{job.job_id}",
            "jobScript": job.script(machine),
            "slurmInfo": f"JobId={job.job_id}\nUserId={job.user}\nAccount={job.project}\nSubmitTime={submitted}\n"
            f"Partition={job.partition}\nNumNodes={job.num_nodes}\n",
            "submitTime": str(job.submit_time),
        },
        "concurrentJobs": {"items": None, "count": 0},
        "energy": 0,
        "walltime": job.walltime,
        "jobId": job.job_id,
        "duration": 0,
        "numHwthreads": sum(len(t) for t in job.hwthreads.values()),
        "numNodes": job.num_nodes,
        "statistics": None,
        "startTime": job.start_time,
    }
    if job.array_job_id:
        body["arrayJobId"] = job.array_job_id
    num_acc = sum(len(a) for a in job.accelerators.values())
    if num_acc:
        body["numAcc"] = num_acc
    return body


def stop_payload(job: SimJob, machine: Machine, state: str, at: int) -> dict[str, Any]:
    """The stop_job body; like cc-slurm-adapter it leaves out startTime."""
    return {"jobId": job.job_id, "cluster": machine.cluster, "jobState": state, "stopTime": at}


def node_state_payload(machine: Machine, states: dict[str, str], jobs: list[SimJob]) -> dict[str, Any]:
    """The /api/nodestate/ body: sinfo's states plus allocation counts per node."""
    per_host: dict[str, list[SimJob]] = {}
    for job in jobs:
        for host in job.hosts:
            per_host.setdefault(host, []).append(job)
    nodes = []
    for host in machine.hosts:
        on = per_host.get(host, [])
        nodes.append({
            "hostname": host,
            "states": [states.get(host, "IDLE")],
            "cpusAllocated": sum(len(j.hwthreads.get(host, ())) for j in on),
            "memoryAllocated": 0,
            "gpusAllocated": sum(len(j.accelerators.get(host, ())) for j in on),
            "jobsRunning": len(on),
        })
    return {"cluster": machine.cluster, "nodes": nodes}


def _lp_string(value: bytes) -> str:
    return value.decode().replace("\\", "\\\\").replace('"', '\\"')


def nats_job_line(function: str, body: dict[str, Any], at: int) -> str:
    """One job event as cc-slurm-adapter publishes it on NATS (line protocol, ns timestamp)."""
    return f'job,function={function} event="{_lp_string(orjson.dumps(body))}" {at * 1_000_000_000}'


def nats_node_state_line(body: dict[str, Any], at: int) -> str:
    """A node-state report as a NATS line."""
    return f'nodestate event="{_lp_string(orjson.dumps(body))}" {at * 1_000_000_000}'
