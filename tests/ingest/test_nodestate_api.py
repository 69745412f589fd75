"""`POST|PUT /api/nodestate/` (cc-backend's body and answer) and the node-state read endpoints."""

from __future__ import annotations

from tests.api.conftest import AppFactory, Tokens, assert_error, example_bytes


def test_reference_request_answers_200_with_an_empty_body(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    response = http.post("/api/nodestate/", content=example_bytes("rest-nodestate.request.json"),
                         headers=tokens.headers())
    assert response.status_code == 200 and response.content == b""
    current = http.get("/api/nodestate/", params={"cluster": "fritz"}, headers=tokens.headers())
    assert current.status_code == 200
    body = current.json()
    assert body["count"] == 4
    states = {n["hostname"]: (n["schedulerState"], n["healthState"]) for n in body["items"]}
    # No metric source configured: checked nodes are `failed` (all metrics missing); down nodes `full`.
    assert states == {"f0649": ("allocated", "failed"), "f0650": ("mixed", "failed"),
                      "f0651": ("idle", "failed"), "f0652": ("down", "full")}
    first = body["items"][0]
    assert set(first) == {"id", "hostname", "cluster", "subCluster", "jobsRunning", "cpusAllocated",
                          "memoryAllocated", "gpusAllocated", "schedulerState", "healthState", "healthData",
                          "metaData", "timeStamp"}
    assert first["healthData"]["missing"][0] == "clock"


def test_the_swagger_path_nodestats_is_the_same_route(make_client: AppFactory, tokens: Tokens) -> None:
    """cc-backend's swagger.yaml publishes `POST /api/nodestats/`; generated clients use that path."""
    http = make_client()
    response = http.post("/api/nodestats/", content=example_bytes("rest-nodestate.request.json"),
                         headers=tokens.headers())
    assert response.status_code == 200 and response.content == b""
    current = http.get("/api/nodestate/", params={"cluster": "fritz"}, headers=tokens.headers()).json()
    assert current["count"] == 4
    malformed = http.post("/api/nodestats/", content=b"{", headers=tokens.headers())
    assert_error(malformed, 400, "parsing request body failed")
    assert http.post("/api/nodestats/", content=example_bytes("rest-nodestate.request.json")).status_code == 401


def test_put_works_too_and_history_counts_reports(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    for states in (["IDLE"], ["ALLOCATED"]):
        body = {"cluster": "fritz", "nodes": [{"hostname": "f0101", "states": states}]}
        assert http.put("/api/nodestate/", json=body, headers=tokens.headers()).status_code == 200
    history = http.get("/api/nodestate/history", params={"cluster": "fritz"}, headers=tokens.headers())
    assert history.status_code == 200
    series = {s["state"]: s for s in history.json()}
    assert set(series) <= {"idle", "allocated"} and sum(series["allocated"]["counts"][-1:]) == 1
    assert all(len(s["counts"]) == len(s["times"]) for s in series.values())
    health = http.get("/api/nodestate/history", params={"cluster": "fritz", "type": "health"},
                      headers=tokens.headers())
    assert [s["state"] for s in health.json()] == ["failed"]


def test_errors_are_precise(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    h = tokens.headers()
    assert_error(http.post("/api/nodestate/", content=b'{"cluster": "fritz", "nodes": [], "x": 1}', headers=h),
                 400, "json: unknown field 'x'")
    assert_error(http.post("/api/nodestate/", json={"cluster": "nope", "nodes": [{"hostname": "a"}]}, headers=h),
                 400, "no such cluster: nope")
    assert_error(http.get("/api/nodestate/", headers=h), 400, "missing required query parameter: cluster")
    assert_error(http.get("/api/nodestate/", params={"cluster": "x"}, headers=h), 400, "unknown cluster: x")
    assert_error(http.get("/api/nodestate/history", params={"cluster": "fritz", "from": "9", "to": "1"}, headers=h),
                 400, "from 9 is after to 1")
    assert_error(http.get("/api/nodestate/history", params={"cluster": "fritz", "type": "x"}, headers=h),
                 400, "type='x'")
    assert_error(http.get("/api/nodestate/", params={"cluster": "fritz", "bogus": "1"}, headers=h),
                 400, "invalid query parameter: bogus")


def test_node_state_needs_the_api_role(make_client: AppFactory, tokens: Tokens) -> None:
    http = make_client()
    response = http.post("/api/nodestate/", content=example_bytes("rest-nodestate.request.json"),
                         headers=tokens.headers("user"))
    assert response.status_code in (401, 403)
