"""A real app for the GraphQL tests: accounts of every role and a small, hand-made set of jobs.

The jobs come in as adapters and scripts send them (REST starts, stops and tags), so every answer of
the tests is checked against values worked out by hand.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.keys import generate_keypair
from streams.events import new_event
from tests.api.conftest import START, AppFactory, job_body, make_archive, sign, tokens_for

#: Accounts: (roles, projects).
ACCOUNTS: dict[str, tuple[list[str], list[str]]] = {
    "alice": (["user"], []), "bob": (["user"], []), "mona": (["manager"], ["proj2"]),
    "sam": (["support"], []), "boss": (["admin", "api"], []), "adapter": (["api"], []), "nobody": ([], []),
}

# Jobs, by (jobId, user, project, cluster, partition, nodes, state, duration, shared, jobName, start offset).
JOBS = [
    (1, "alice", "proj1", "fritz", "singlenode", 1, "completed", 600, "none", "relax", 0),
    (2, "alice", "proj1", "fritz", "multinode", 4, "failed", 7200, "none", "interactive", 100),
    (3, "bob", "proj2", "fritz", "singlenode", 1, "running", 0, "multi_user", "bench_a", 200),
    (4, "bob", "proj2", "alex", "a40", 2, "completed", 3600, "none", "bench_b", 300),
    (5, "mona", "proj3", "alex", "a100", 1, "timeout", 86400, "none", "big", 400),
]


def token(tok: Any, user: str) -> dict[str, str]:
    roles, projects = ACCOUNTS[user]
    now = int(time.time())
    return {"Authorization": "Bearer " + sign(tok.private_key, {"sub": user, "roles": roles, "projects": projects,
                                                               "iat": now, "exp": now + 3600})}


class Gql:
    """Sends GraphQL requests as a user."""

    def __init__(self, http: TestClient, tok: Any) -> None:
        self.http, self.tok = http, tok

    def post(self, query: str, variables: dict[str, Any] | None = None, *, user: str = "boss") -> Any:
        return self.http.post("/query", json={"query": query, "variables": variables or {}},
                              headers=token(self.tok, user))

    def data(self, query: str, variables: dict[str, Any] | None = None, *, user: str = "boss") -> Any:
        response = self.post(query, variables, user=user)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def errors(self, query: str, variables: dict[str, Any] | None = None, *, user: str = "boss",
               status: int = 200) -> list[dict[str, Any]]:
        response = self.post(query, variables, user=user)
        assert response.status_code == status, response.text
        errors = response.json()["errors"]
        assert errors, response.text
        return list(errors)


@contextmanager
def graphql_app(tmp_path_factory: pytest.TempPathFactory, closer: Any) -> Iterator[tuple[Gql, dict[int, int]]]:
    """An app with ACCOUNTS and JOBS, and jobId → database id. Job 1 is tagged app:gromacs (global),
    review:slow (admin) and note:mine (alice's), job 4 app:gromacs."""
    with pytest.MonkeyPatch.context() as patch:
        public, private = generate_keypair()
        patch.setenv("JWT_PUBLIC_KEY", public)
        patch.setenv("JWT_PRIVATE_KEY", private)
        tmp: Path = tmp_path_factory.mktemp("graphql")
        factory = AppFactory(tmp, make_archive(tmp / "job-archive"), closer)
        http = factory({"archiver": {"enabled": False}})  # footprints: the tests append job.archived
        tok = tokens_for(public, private)
        services = http.app.state.services  # type: ignore[attr-defined]
        services.log.append([
            new_event("user.created", f"users/{name}", {"username": name, "roles": roles, "projects": projects,
                                                       "name": name.title(), "email": f"{name}@example.org"},
                      id=f"gql-account-{name}", source="test")
            for name, (roles, projects) in ACCOUNTS.items()])
        assert services.runner.wait_for(services.log.head(), timeout=60)
        ids = {}
        api = {"X-Auth-Token": tok.api}
        for job_id, user, project, cluster, partition, nodes, state, duration, shared, name, offset in JOBS:
            hosts = [f"f{101 + i:04d}" if cluster == "fritz" else f"a{121 + i:04d}" for i in range(nodes)]
            body = job_body(jobId=job_id, user=user, project=project, cluster=cluster, partition=partition,
                            numNodes=nodes, shared=shared, startTime=START + offset, metaData={"jobName": name},
                            resources=[{"hostname": h} for h in hosts], numHwthreads=nodes * 8)
            response = http.post("/api/jobs/start_job/", json=body, headers=api)
            assert response.status_code == 201, response.text
            ids[job_id] = int(response.json()["id"])
            if state != "running":
                stop = {"jobId": job_id, "cluster": cluster, "startTime": START + offset, "jobState": state,
                        "stopTime": START + offset + duration}
                assert http.post("/api/jobs/stop_job/", json=stop, headers=api).status_code == 200
        tags = [{"type": "app", "name": "gromacs"}, {"type": "review", "name": "slow", "scope": "admin"},
                {"type": "note", "name": "mine", "scope": "alice"}]
        assert http.post(f"/api/jobs/tag_job/{ids[1]}", json=tags, headers=api).status_code == 200
        assert http.post(f"/api/jobs/tag_job/{ids[4]}", json=tags[:1], headers=api).status_code == 200
        yield Gql(http, tok), ids
        factory.close_all()
