"""`jobsStatistics`: totals, groups, sorting, paging and histograms, checked against sums done by hand.

The jobs are those of tests/api/gqlsupport.py; the finished ones (1, 2, 4, 5) are the ones summed, as a
running job's duration grows while the test runs. Footprints come from `job.archived` events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from streams.events import job_subject, new_event
from tests.api.conftest import START
from tests.api.gqlsupport import JOBS, Gql, graphql_app

FINISHED = [{"state": ["completed", "failed", "timeout"]}]
TOTALS = ("totalJobs totalUsers totalWalltime totalNodes totalNodeHours totalCores totalCoreHours totalAccs"
          " totalAccHours runningJobs shortJobs")
#: flops_any_avg of the finished jobs.
FLOPS = {1: 100.0, 2: 2800.0, 4: 9000.0, 5: 5600.0}


@pytest.fixture(scope="module")
def gql(tmp_path_factory: pytest.TempPathFactory, closer: Any) -> Iterator[tuple[Gql, dict[int, int]]]:
    with graphql_app(tmp_path_factory, closer) as (client, ids):
        services = client.http.app.state.services  # type: ignore[attr-defined]
        starts = {j[0]: (j[3], START + j[10]) for j in JOBS}
        services.log.append([
            new_event("job.archived", job_subject(starts[j][0], j, starts[j][1]),
                      {"footprint": {"flops_any_avg": value}, "location": f"test/{j}"}, source="test")
            for j, value in FLOPS.items()])
        assert services.runner.wait_for(services.log.head(), timeout=60)
        yield client, ids


def statistics(client: Gql, args: str, fields: str, variables: dict[str, Any] | None = None,
               user: str = "boss") -> list[dict[str, Any]]:
    query = f"query($filter: [JobFilter!]) {{ jobsStatistics(filter: $filter{args}) {{ {fields} }} }}"
    return list(client.data(query, {"filter": FINISHED, **(variables or {})}, user=user)["jobsStatistics"])


def test_totals_of_the_finished_jobs(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    # durations 600, 7200, 3600, 86400 s on 1, 4, 2, 1 nodes with 8 hardware threads per node
    assert statistics(client, "", f"id name {TOTALS}") == [{
        "id": "", "name": "", "totalJobs": 4, "totalUsers": 3,
        "totalWalltime": 27,  # 97,800 s = 27.17 h
        "totalNodes": 8, "totalNodeHours": 34,  # 123,000 node-seconds = 34.17 h
        "totalCores": 64, "totalCoreHours": 273,  # 984,000 s = 273.3 h
        "totalAccs": 0, "totalAccHours": 0, "runningJobs": 0, "shortJobs": 0}]


def test_hours_are_rounded_not_floored(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    [alice] = statistics(client, "", "totalWalltime totalNodeHours",
                         {"filter": [*FINISHED, {"user": {"eq": "alice"}}]})
    assert alice == {"totalWalltime": 2, "totalNodeHours": 8}  # 7,800 s = 2.17 h; 29,400 s = 8.17 h
    [bob] = statistics(client, "", "totalWalltime totalCoreHours", {"filter": [{"jobId": {"eq": "4"}}]})
    assert bob == {"totalWalltime": 1, "totalCoreHours": 16}


def test_running_and_short_jobs(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    [every] = statistics(client, "", "totalJobs runningJobs shortJobs", {"filter": []})
    # the running job's stored duration is 0 until it ends: short, as in cc-backend
    assert every == {"totalJobs": 5, "runningJobs": 1, "shortJobs": 1}


def test_grouped_by_user_sorted_and_paged(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    groups = statistics(client, ", groupBy: USER", "id name totalJobs totalWalltime")
    assert groups == [{"id": "alice", "name": "Alice", "totalJobs": 2, "totalWalltime": 2},
                      {"id": "bob", "name": "Bob", "totalJobs": 1, "totalWalltime": 1},
                      {"id": "mona", "name": "Mona", "totalJobs": 1, "totalWalltime": 24}]
    top = statistics(client, ", groupBy: USER, sortBy: TOTALWALLTIME, page: {itemsPerPage: 2, page: 1}",
                     "id totalWalltime")
    assert top == [{"id": "mona", "totalWalltime": 24}, {"id": "alice", "totalWalltime": 2}]
    projects = statistics(client, ", groupBy: PROJECT, sortBy: TOTALJOBS", "id totalJobs totalUsers")
    assert projects == [{"id": "proj1", "totalJobs": 2, "totalUsers": 1}, {"id": "proj2", "totalJobs": 1,
                        "totalUsers": 1}, {"id": "proj3", "totalJobs": 1, "totalUsers": 1}]
    clusters = statistics(client, ", groupBy: CLUSTER", "id totalNodes")
    assert clusters == [{"id": "alex", "totalNodes": 3}, {"id": "fritz", "totalNodes": 5}]


def test_a_user_sees_statistics_of_their_own_jobs_only(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    assert statistics(client, ", groupBy: USER", "id totalJobs", user="alice") == [{"id": "alice", "totalJobs": 2}]
    assert statistics(client, "", "totalJobs", user="mona") == [{"totalJobs": 2}]  # proj2's job 4 and her own 5


def test_count_histograms(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    [stats] = statistics(client, "", "histNumNodes { value count } histNumCores { value count }"
                                     " histNumAccs { value count }")
    assert stats["histNumNodes"] == [{"value": 1, "count": 2}, {"value": 2, "count": 1}, {"value": 4, "count": 1}]
    assert stats["histNumCores"] == [{"value": 8, "count": 2}, {"value": 16, "count": 1}, {"value": 32, "count": 1}]
    assert stats["histNumAccs"] == [{"value": 0, "count": 4}]


def test_duration_histogram_has_every_bin_with_its_upper_bound(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    [stats] = statistics(client, "", "histDuration { value count }")
    bins = stats["histDuration"]
    assert len(bins) == 48 and [b["value"] for b in bins] == [3600 * i for i in range(1, 49)]
    assert {b["value"]: b["count"] for b in bins if b["count"]} == {3600: 1, 7200: 1, 10800: 1, 90000: 1}
    [ten] = statistics(client, ", numDurationBins: \"10m\"", "histDuration { value count }")
    assert len(ten["histDuration"]) == 72
    # 600, 3600 and 7200 s; 86,400 s lies beyond the last bin (72 bins of 600 s) and is left out
    assert {b["value"]: b["count"] for b in ten["histDuration"] if b["count"]} == {1200: 1, 4200: 1, 7800: 1}


def test_metric_histograms_of_finished_jobs(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    fields = "histMetrics { metric unit stat data { bin count min max } }"
    [fritz] = statistics(client, ", metrics: [\"flops_any\"]", fields,
                         {"filter": [*FINISHED, {"cluster": {"eq": "fritz"}}]})
    [flops] = fritz["histMetrics"]
    assert (flops["metric"], flops["unit"], flops["stat"]) == ("flops_any", "GFlops/s", "avg")
    assert len(flops["data"]) == 10  # peak 5600 in 10 bins of 560
    assert {d["bin"]: d["count"] for d in flops["data"] if d["count"]} == {1: 1, 6: 1}  # 100 and 2800
    assert flops["data"][5] == {"bin": 6, "count": 1, "min": 2800, "max": 3360}
    [everywhere] = statistics(client, ", metrics: [\"flops_any\", \"no_such\"]", fields)
    [flops] = everywhere["histMetrics"]  # peak: the highest of both clusters' (alex 9216)
    assert {d["bin"]: d["count"] for d in flops["data"] if d["count"]} == {1: 1, 4: 1, 7: 1, 10: 1}


def test_histograms_with_group_by_are_an_error(gql: tuple[Gql, dict[int, int]]) -> None:
    client, _ = gql
    errors = client.errors("query { jobsStatistics(groupBy: USER) { id histDuration { count } } }")
    assert errors[0]["message"] == "histograms only implemented without groupBy argument"

