"""Schemathesis against the document a real `ccstream serve --dev` serves: every operation, bounded and seeded.

The served document must be the pinned `api/openapi.json`; then every operation gets generated requests
(valid and invalid bodies, parameters at and past their bounds) from a token with every role, and each
answer must be no server error, have a documented status and content type, and match its schema.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import OPENAPI_URL
from api.openapi import PINNED
from tests.support.server import CcstreamServer, start_payload, stop_payload

#: Generated requests per operation: enough to reach bounds and error paths, small enough for 2 busy cores.
MAX_EXAMPLES = int(os.environ.get("CCSTREAM_SCHEMATHESIS_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EVERY_ROLE = "anonymous,api,user,manager,support,admin"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CcstreamServer]:
    """A served installation with every route and a few jobs (running, stopped, tagged) to find."""
    server = CcstreamServer(tmp_path_factory.mktemp("schemathesis"))
    server.serve_args = ("--dev",)
    server.prepare()
    server.use_account("everyone", EVERY_ROLE)
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30) as http:
            for n in range(3):
                answer = http.post("/api/jobs/start_job/", json=start_payload(100 + n, 1_700_000_000 + n, host_index=n))
                assert answer.status_code == 201, answer.text
            stopped = http.post("/api/jobs/stop_job/", json=stop_payload(100, 1_700_000_000, 1_700_000_600))
            assert stopped.status_code == 200, stopped.text
            tagged = http.post("/api/jobs/tag_job/2", json=[{"type": "test", "name": "seen"}])
            assert tagged.status_code == 200, tagged.text
        yield server
    finally:
        server.stop()


def served_document(server: CcstreamServer) -> dict[str, Any]:
    answer = httpx.get(server.base_url + OPENAPI_URL, timeout=30)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def test_the_served_document_is_the_pinned_one(server: CcstreamServer) -> None:
    assert served_document(server) == orjson.loads(Path(PINNED).read_bytes())


def test_out_of_range_path_integers_are_refused_with_400(server: CcstreamServer) -> None:
    # An earlier schemathesis find: a job id past 64 bits must be a 400 naming the limit, not a 500.
    answer = httpx.post(f"{server.base_url}/api/jobs/tag_job/2547521030671188540230773768192",
                        headers=server.headers, json=[{"type": "t", "name": "n"}], timeout=30)
    assert answer.status_code == 400
    assert answer.json() == {"status": "Bad Request", "error": "invalid job id: '2547521030671188540230773768192' "
                             "is outside the 64-bit integer range"}


def _run_operation(operation: Any, base_url: str, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=60)

    check()


def test_every_operation_conforms_to_the_document(server: CcstreamServer) -> None:
    schema = schemathesis.openapi.from_dict(served_document(server))
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _run_operation(operation, server.base_url, server.headers)
        except (Exception, BaseExceptionGroup) as exc:  # every operation is tried; all are reported together
            failures[operation.label] = f"{type(exc).__name__}: {exc}"
    assert operations >= 45
    assert not failures, "\n\n".join(f"{label}:\n{why}" for label, why in failures.items())
