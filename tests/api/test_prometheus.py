"""`/metrics` (api.prometheus): state read at scrape time, refusals by reason, latency per route template."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.bootstrap import StartupError, build_services
from api.config import ConfigError, Settings, parse_settings
from api.keys import generate_keypair
from api.prometheus import metric_store_families, nats_families, plain_families
from tests.api.conftest import AppFactory, Tokens, claims, job_body, sign, start_job
from tests.support.server import free_port
from tests.support.wait import eventually

START_ROUTE = "/api/jobs/start_job/"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and label set."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape(http: TestClient, tok: Tokens) -> Samples:
    response = http.get("/metrics", headers=tok.headers())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def test_metrics_need_the_api_role_on_the_main_server(shared_client: tuple[TestClient, Tokens]) -> None:
    http, tok = shared_client
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers=tok.headers("user")).status_code == 403
    assert value(scrape(http, tok), "ccstream_event_log_head") is not None


def test_scrape_shows_log_head_agent_lag_refusals_and_latency(client: tuple[TestClient, Tokens]) -> None:
    http, tok = client
    services = http.app.state.services  # type: ignore[attr-defined]
    start_job(http, tok)
    _, foreign_key = generate_keypair()
    wrong = sign(foreign_key, claims("adapter", ["api"]))
    assert http.post(START_ROUTE, json=job_body(jobId=2), headers={"X-Auth-Token": wrong}).status_code == 401
    assert http.get("/api/jobs/12345", headers=tok.headers()).status_code == 404  # a route with a parameter
    assert http.get("/no/such/path/4711", headers=tok.headers()).status_code == 404

    def caught_up() -> bool:
        samples = scrape(http, tok)
        return value(samples, "ccstream_agent_lag_events", agent="jobdb") == 0
    eventually(caught_up)
    samples = scrape(http, tok)

    head = services.log.head()
    assert head >= 1 and value(samples, "ccstream_event_log_head") == head
    assert value(samples, "ccstream_agent_checkpoint", agent="jobdb") == head
    assert value(samples, "ccstream_agent_running", agent="jobdb") == 1
    assert value(samples, "ccstream_http_requests_refused_total", reason="bad_token", route=START_ROUTE) == 1
    assert value(samples, "ccstream_http_request_duration_seconds_count",
                 method="POST", route=START_ROUTE, status="201") == 1
    assert value(samples, "ccstream_http_request_duration_seconds_count",
                 method="POST", route=START_ROUTE, status="401") == 1
    assert value(samples, "ccstream_http_request_duration_seconds_count",
                 method="GET", route="/api/jobs/{db_id}", status="404") == 1
    routes = {dict(labels).get("route") for _, labels in samples}
    assert "<unmatched>" in routes and not any("4711" in str(r) or "12345" in str(r) for r in routes)
    assert value(samples, "ccstream_read_pool_refused_total") == 0
    assert value(samples, "ccstream_metricstore_samples_accepted_total") == 0
    assert value(samples, "ccstream_archiver_pending_jobs") == 0


def test_every_reason_of_refusal_is_counted(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    expired = sign(tokens.private_key, claims("adapter", ["api"], exp_in=-10))
    ghost = sign(tokens.private_key, claims("ghost", ["api"]))
    cases = {"no_token": {}, "bad_token": {"X-Auth-Token": "not-a-jwt"}, "expired_token": {"X-Auth-Token": expired},
             "unknown_user": {"X-Auth-Token": ghost}, "wrong_role": tokens.headers("user")}
    for headers in cases.values():
        assert http.post(START_ROUTE, json=job_body(), headers=headers).status_code in (401, 403)
    assert http.get("/api/admin/status", headers=tokens.headers()).status_code == 403  # api lacks admin
    samples = scrape(http, tokens)
    for reason in cases:
        assert value(samples, "ccstream_http_requests_refused_total", reason=reason, route=START_ROUTE) == 1, reason
    assert value(samples, "ccstream_http_requests_refused_total", reason="wrong_role",
                 route="/api/admin/status") == 1

    fenced = make_client({"main": {"api-allowed-ips": ["10.0.0.1"]}})
    assert fenced.post(START_ROUTE, json=job_body(), headers=tokens.headers()).status_code == 403
    fenced_samples = parse(fenced.app.state.metrics.exposition().decode())  # type: ignore[attr-defined]
    assert value(fenced_samples, "ccstream_http_requests_refused_total", reason="ip_not_allowed",
                 route=START_ROUTE) == 1


def test_separate_listener_serves_without_a_token_on_loopback(make_client: AppFactory, tokens: Tokens) -> None:
    port = free_port()
    http = make_client({"prometheus": {"listen": f"127.0.0.1:{port}"}})
    start_job(http, tokens)
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    samples = parse(response.text)
    assert value(samples, "ccstream_http_request_duration_seconds_count",
                 method="POST", route=START_ROUTE, status="201") == 1
    assert http.get("/metrics", headers=tokens.headers()).status_code == 404, "not on the main server too"
    make_client.close(http)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)


def test_disabled_metrics_are_not_served(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client({"prometheus": {"enabled": False}})
    assert http.get("/metrics", headers=tokens.headers()).status_code == 404
    assert http.app.state.metrics is None  # type: ignore[attr-defined]


def test_listen_addresses_default_to_loopback_and_typos_are_refused() -> None:
    assert parse_settings('{"prometheus": {"listen": ":9102"}}').prometheus.address() == ("127.0.0.1", 9102)
    assert parse_settings('{"prometheus": {"listen": "[::1]:9102"}}').prometheus.address() == ("::1", 9102)
    assert parse_settings("{}").prometheus.address() is None
    with pytest.raises(ConfigError, match=r"prometheus\.listen"):
        parse_settings('{"prometheus": {"listen": "localhost:http"}}')


def test_metric_store_stats_become_counters_and_gauges_with_reasons_as_labels() -> None:
    stats = {"samples_accepted": 5, "samples_overwritten": 2, "lines_rejected": 3,
             "lines_rejected_by_reason": {"syntax": 2, "unknown_host": 1}, "memory_bytes": 4096, "series": 7,
             "wal_torn_bytes": 12, "slot_overwritten_samples": 4, "last_checkpoint": None, "clusters": ["fritz"],
             "unknown_metrics": []}
    families = {f.name: f for f in metric_store_families(stats)}
    assert {name: f.type for name, f in families.items()} == {
        "ccstream_metricstore_samples_accepted": "counter", "ccstream_metricstore_samples_overwritten": "counter",
        "ccstream_metricstore_lines_rejected": "counter", "ccstream_metricstore_memory_bytes": "gauge",
        "ccstream_metricstore_series": "gauge", "ccstream_metricstore_wal_torn_bytes": "gauge",
        "ccstream_metricstore_slot_overwritten_samples": "counter"}
    by_reason = {s.labels["reason"]: s.value for s in families["ccstream_metricstore_lines_rejected"].samples}
    assert by_reason == {"syntax": 2, "unknown_host": 1}


def test_nats_state_and_per_subject_counters() -> None:
    subjects = {"jobs": {"received": 4, "applied": 3, "rejected": 1}, "nodes": {"received": 2, "applied": 2}}
    families = {f.name: f for f in nats_families("connected", True, 2, subjects)}
    assert families["ccstream_nats_connected"].samples[0].value == 1
    assert families["ccstream_nats_subscribed"].samples[0].value == 1
    assert families["ccstream_nats_connects"].samples[0].value == 2
    received = {s.labels["subject"]: s.value for s in families["ccstream_nats_received"].samples}
    assert received == {"jobs": 4, "nodes": 2} and families["ccstream_nats_received"].type == "counter"
    rejected = {s.labels["subject"]: s.value for s in families["ccstream_nats_rejected"].samples}
    assert rejected == {"jobs": 1, "nodes": 0}
    down = {f.name: f for f in nats_families("disconnected", False, 2, subjects)}
    assert down["ccstream_nats_connected"].samples[0].value == 0


def test_metric_store_subscriber_counters() -> None:
    counters = {"connected": True, "messages": 10, "bytes": 900, "dropped_messages": 1, "note": "text"}
    families = {f.name: f for f in plain_families("ccstream_metricstore_nats", counters, "subscriber")}
    assert {name: (f.type, f.samples[0].value) for name, f in families.items()} == {
        "ccstream_metricstore_nats_connected": ("gauge", 1), "ccstream_metricstore_nats_messages": ("counter", 10),
        "ccstream_metricstore_nats_bytes": ("counter", 900),
        "ccstream_metricstore_nats_dropped_messages": ("counter", 1)}


def test_a_taken_listener_port_fails_the_start_before_anything_starts(tmp_path: Path, archive_root: Path,
                                                                      tokens: Tokens) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings.model_validate({
            "main": {"db": str(tmp_path / "job.db")}, "archive": {"kind": "file", "path": str(archive_root)},
            "event-log": {"kind": "memory"}, "archiver": {"state-path": str(tmp_path / "agents.db")},
            "metric-store": {"checkpoints": {"directory": str(tmp_path / "checkpoints")}},
            "prometheus": {"listen": f"127.0.0.1:{port}"}})
        services = build_services(settings)
        try:
            with pytest.raises(StartupError, match=f"prometheus.listen 127.0.0.1:{port}"), \
                    TestClient(create_app(services)):
                pass
            assert not services.started
        finally:
            services.close()
