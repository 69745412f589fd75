"""Parked stops are bounded: refused when they can never apply, limited in number, expired with an event."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from api.scheduler import expire_parked_stops
from tests.api.conftest import START, AppFactory, Tokens, assert_error, job_body

STOP_PATH = "/api/jobs/stop_job/"
START_PATH = "/api/jobs/start_job/"


def parked(http: TestClient, tok: Tokens) -> list[dict[str, object]]:
    return list(http.get("/api/admin/parked-stops", headers=tok.headers("admin")).json())


def test_a_stop_in_state_running_is_refused_everywhere(client: tuple[TestClient, Tokens]) -> None:
    http, tok = client
    body = {"jobId": 1000, "cluster": "fritz", "stopTime": START + 9, "jobState": "running"}
    assert_error(http.post(STOP_PATH, json=body, headers=tok.headers()), 400, "running")  # would be parked
    http.post(START_PATH, json=job_body(), headers=tok.headers())
    assert_error(http.post(STOP_PATH, json=body, headers=tok.headers()), 400, "running")  # would stop it


def test_a_parked_stop_before_its_own_start_time_is_refused(client: tuple[TestClient, Tokens]) -> None:
    http, tok = client
    body = {"jobId": 5, "cluster": "fritz", "startTime": START, "stopTime": START - 1}
    assert_error(http.post(STOP_PATH, json=body, headers=tok.headers()), 400, "must be larger/equal")
    assert parked(http, tok) == []


def test_parked_stops_are_limited_in_number(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client({"intake": {"max-parked-stops": 2}})
    for job_id in (1, 2):
        body = {"jobId": job_id, "cluster": "fritz", "stopTime": START + 9}
        assert http.post(STOP_PATH, json=body, headers=tokens.headers()).status_code == 202
    body = {"jobId": 3, "cluster": "fritz", "stopTime": START + 9}
    assert_error(http.post(STOP_PATH, json=body, headers=tokens.headers()), 400, "intake.max-parked-stops")
    assert len(parked(http, tokens)) == 2


def test_an_old_parked_stop_expires_with_an_event_and_no_longer_stops_its_job(
    client: tuple[TestClient, Tokens],
) -> None:
    http, tok = client
    body = {"jobId": 1000, "cluster": "fritz", "stopTime": START + 9}
    assert http.post(STOP_PATH, json=body, headers=tok.headers()).status_code == 202
    services = http.app.state.services  # type: ignore[attr-defined]
    max_age = services.settings.intake.parked_stop_max_age
    assert expire_parked_stops(services.settings, services.log, services.reader, now=time.time() + 60) == 0
    assert expire_parked_stops(services.settings, services.log, services.reader, now=time.time() + max_age + 60) == 1
    [event] = [e for e in services.log.read(0, 100) if e.type == "job.parked_stop_expired"]
    assert "intake.parked-stop-max-age" in event.data["reason"]
    assert services.runner.wait_for(services.log.head(), timeout=30)
    assert parked(http, tok) == []
    # Run again before anything changed: the same ids, nothing new in the log.
    head = services.log.head()
    assert expire_parked_stops(services.settings, services.log, services.reader, now=time.time() + max_age + 60) == 0
    assert services.log.head() == head
    started = http.post(START_PATH, json=job_body(), headers=tok.headers()).json()["id"]
    assert http.get(f"/api/jobs/{started}", headers=tok.headers()).json()["meta"]["jobState"] == "running"
