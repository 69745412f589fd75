"""Fixtures of the ingest tests: the real fritz cluster, real logs and read models, real nats-server.

The REST fixtures of tests/api (app factory, keys, tokens) are reused as they are.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.clusters import ClusterRegistry
from tests.api.conftest import archive_root, closer, keys, make_client, tokens  # noqa: F401
from tests.support.natsserver import nats_server_factory, nats_url  # noqa: F401
from tests.support.specs import find_specs

SPECS = find_specs()
EXAMPLES = SPECS / "examples"
START = 1_675_954_353


@pytest.fixture
def clusters() -> ClusterRegistry:
    """fritz as cc-backend ships it: subclusters main, spr1tb, spr2tb with nodelists."""
    return ClusterRegistry.from_dicts([orjson.loads((SPECS / "archive" / "fritz" / "cluster.json").read_bytes())])


def start_body(job_id: int, start_time: int = START, host: str = "f0101", **extra: Any) -> dict[str, Any]:
    """A valid start_job body on fritz/main."""
    body: dict[str, Any] = {
        "jobId": job_id, "user": "alice", "project": "proj", "cluster": "fritz", "partition": "singlenode",
        "numNodes": 1, "numHwthreads": 72, "walltime": 3600, "startTime": start_time,
        "resources": [{"hostname": host}], "metaData": {"jobName": f"job-{job_id}"},
    }
    body.update(extra)
    return body


def stop_body(job_id: int, stop_time: int, state: str = "completed", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"jobId": job_id, "cluster": "fritz", "jobState": state, "stopTime": stop_time}
    body.update(extra)
    return body


def lp_escape(text: str) -> str:
    """A string as a line-protocol string field value (quotes and backslashes escaped)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def job_line(function: str, body: dict[str, Any] | str, ts: int | None = None) -> bytes:
    """`job,function=<f> event="<json>" <ts>`, as cc-backend's adapters publish it."""
    raw = body if isinstance(body, str) else orjson.dumps(body).decode()
    stamp = f" {ts}" if ts is not None else ""
    return f'job,function={function} event="{lp_escape(raw)}"{stamp}'.encode()


def node_line(body: dict[str, Any] | str, ts: int | None = None) -> bytes:
    raw = body if isinstance(body, str) else orjson.dumps(body).decode()
    stamp = f" {ts}" if ts is not None else ""
    return f'nodestate event="{lp_escape(raw)}"{stamp}'.encode()
