"""Generated and boundary start/stop payloads through REST intake: each is refused with a clear 400, or
accepted and applied by the job database; either way a normal start afterwards still answers with its id.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import START, Tokens, job_body

FRESH_IDS = itertools.count(10_000)
BOUNDARY_INTS = st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64])
INTS = st.one_of(BOUNDARY_INTS, st.integers())
FULL_WIDTH_HOST = "\uff46\uff10\uff11\uff10\uff11"  # f0101 in full-width letters
TEXT = st.one_of(st.text(max_size=40),
                 st.sampled_from(["", "\x00", "a\nb", "x" * 300, FULL_WIDTH_HOST, "\U0010ffff"]))
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=30,
)
START_FIELDS = {
    "jobId": INTS, "arrayJobId": INTS, "numNodes": INTS, "numHwthreads": INTS, "numAcc": INTS, "smt": INTS,
    "walltime": INTS, "requestedMemory": INTS, "submitTime": INTS, "startTime": INTS, "energy": FLOATS,
    "user": TEXT, "project": TEXT, "partition": TEXT, "metaData": st.dictionaries(TEXT, TEXT, max_size=3),
    "statistics": st.dictionaries(TEXT, JSON, max_size=3), "footprint": st.dictionaries(TEXT, FLOATS, max_size=2),
    "resources": st.lists(st.fixed_dictionaries({"hostname": TEXT}), min_size=1, max_size=2),
}


def encode(body: dict[str, Any]) -> bytes:
    """JSON as a client could send it: big integers and NaN literals included (orjson refuses those)."""
    return orjson.dumps(body, default=str, option=orjson.OPT_PASSTHROUGH_SUBCLASS) if _plain(body) else (
        _by_hand(body).encode())


def _plain(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, list):
        return all(map(_plain, value))
    return all(_plain(v) for v in value.values())


def _by_hand(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{orjson.dumps(str(k)).decode()}:{_by_hand(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(_by_hand, value)) + "]"
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return orjson.dumps(value).decode() if not isinstance(value, int) else str(value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=st.fixed_dictionaries({}, optional=START_FIELDS))
def test_any_start_is_refused_clearly_or_applied(client: tuple[TestClient, Tokens],
                                                 overrides: dict[str, Any]) -> None:
    http, tok = client
    services = http.app.state.services  # type: ignore[attr-defined]
    body = job_body(**{"jobId": next(FRESH_IDS), **overrides})  # a fresh job unless the example names one
    response = http.post("/api/jobs/start_job/", content=encode(body),
                         headers={**tok.headers(), "Content-Type": "application/json"})
    assert response.status_code in (201, 400, 422), response.text
    if response.status_code != 201:
        answer = response.json()
        assert set(answer) == {"status", "error"} and answer["error"], answer
    else:
        assert services.runner.wait_for(services.log.head(), timeout=30)
    status = services.runner.status()
    assert status.failures == 0 and status.quarantined == 0, status
    stop = http.post("/api/jobs/stop_job/", content=encode({"jobId": overrides.get("jobId", 0), "cluster": "fritz",
                                                          "stopTime": overrides.get("startTime", START)}),
                     headers={**tok.headers(), "Content-Type": "application/json"})
    assert stop.status_code in (200, 202, 400, 404, 422), stop.text
    normal = http.post("/api/jobs/start_job/", json=job_body(jobId=services.log.head() + 1_000_000),
                       headers=tok.headers())
    assert normal.status_code == 201 and normal.json().get("id"), normal.text
