"""Cluster registry: the real alex/emmy/fritz configs, subcluster lookup, overrides and bad files."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from streams.clusters import ClusterConfigError, ClusterRegistry, validate_cluster
from tests.support.specs import find_specs

SPECS = find_specs()
ARCHIVE = SPECS / "archive"


@pytest.fixture(scope="module")
def registry() -> ClusterRegistry:
    return ClusterRegistry.load(ARCHIVE)


def real(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ARCHIVE / name / "cluster.json").read_text())
    return data


def minimal(name: str = "demo", nodes: str = "d[01-04]", **extra: Any) -> dict[str, Any]:
    """The smallest cluster.json the registry accepts, with schema-complete subcluster fields."""
    subcluster = {
        "name": "main",
        "nodes": nodes,
        "processorType": "Demo CPU",
        "socketsPerNode": 1,
        "coresPerSocket": 2,
        "threadsPerCore": 1,
        "flopRateScalar": {"unit": {"base": "F/s", "prefix": "G"}, "value": 10},
        "flopRateSimd": {"unit": {"base": "F/s", "prefix": "G"}, "value": 40},
        "memoryBandwidth": {"unit": {"base": "B/s", "prefix": "G"}, "value": 20},
        "topology": {"node": [0, 1], "socket": [[0, 1]], "memoryDomain": [[0, 1]], "core": [[0], [1]]},
    }
    metric = {
        "name": "cpu_load",
        "unit": {"base": ""},
        "scope": "node",
        "aggregation": "avg",
        "timestep": 60,
        "peak": 2,
        "normal": 2,
        "caution": 1,
        "alert": 0.5,
    }
    return {"name": name, "metricConfig": [metric], "subClusters": [subcluster], **extra}


def write_cluster(root: Path, name: str, text: str) -> Path:
    path = root / name / "cluster.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


# --- loading real data -----------------------------------------------------------------------


def test_all_real_clusters_load_without_problems(registry: ClusterRegistry) -> None:
    assert registry.names() == ["alex", "emmy", "fritz"]
    for name in registry.names():
        assert registry.has(name) and name in registry
        assert registry.problems(name) == []
        assert registry.get(name) == real(name)


def test_importer_cluster_validates_cleanly() -> None:
    data = json.loads((SPECS / "importer" / "cluster-fritz.json").read_text())
    assert validate_cluster(data) == []
    registry = ClusterRegistry.from_dicts([data])
    assert registry.subcluster_of("fritz", "f1288") is None
    assert registry.subcluster_of("fritz", "f1256") == "main"


def test_missing_root_is_an_empty_registry(tmp_path: Path) -> None:
    registry = ClusterRegistry.load(tmp_path / "nope")
    assert registry.names() == [] and len(registry) == 0
    assert registry.get("fritz") is None
    assert registry.subcluster_of("fritz", "f0101") is None


def test_directories_without_cluster_json_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "lost+found").mkdir()
    write_cluster(tmp_path, "demo", json.dumps(minimal()))
    assert ClusterRegistry.load(tmp_path).names() == ["demo"]


def test_get_returns_a_copy(registry: ClusterRegistry) -> None:
    served = registry.get("emmy")
    assert served is not None
    served["subClusters"].clear()
    assert registry.subcluster_of("emmy", "w1127") == "haswell"
    assert registry.get("emmy") == real("emmy")
    assert [c["name"] for c in registry.clusters()] == ["alex", "emmy", "fritz"]


# --- subcluster lookup -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("f0101", "main"),
        ("f0888", "main"),
        ("f1156", "main"),
        ("f1256", "main"),
        ("f1157", None),  # rows 11 and 12 end at 56
        ("f1288", None),
        ("f0189", None),
        ("f101", None),
        ("f2157", "spr1tb"),
        ("f2280", "spr1tb"),
        # spr1tb's f[2157-2188,...] overlaps spr2tb's f[2181-2188,...]: the first listed wins.
        ("f2181", "spr1tb"),
        ("f2288", "spr1tb"),
        ("f2156", None),
        ("f2189", None),
        ("a0121", None),
    ],
)
def test_fritz_subcluster_of(registry: ClusterRegistry, host: str, expected: str | None) -> None:
    assert registry.subcluster_of("fritz", host) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("a0121", "a40"),
        ("a0129", "a40"),
        ("a1624", "a40"),
        ("a1722", "a40"),
        ("a0522", "a40"),
        ("a0523", None),
        ("a0601", "a100"),
        ("a0905", "a100"),
        ("a0906", None),
        ("a0531", "a100m80"),
        ("a0831", "a100m80"),
        ("a0832", None),
        ("a0934", "a100m80"),
        ("a121", None),
    ],
)
def test_alex_gpu_subcluster_of(registry: ClusterRegistry, host: str, expected: str | None) -> None:
    assert registry.subcluster_of("alex", host) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("w1127", "haswell"),
        ("w1145", "haswell"),
        ("w1146", None),  # gap 46-48 in w11[27-45,49-63,69-72]
        ("w1149", "haswell"),
        ("w1172", "haswell"),
        ("w1201", "skylake"),
        ("w1332", None),  # gap in w13[01-31,33-56]
        ("w1356", "skylake"),
        ("w1506", None),  # gap in w15[01-05,07-56]
        ("w1507", "kabylake"),
        ("w2201", "icelake"),
        ("w2335", "icelake"),
        ("w2336", None),
    ],
)
def test_emmy_subcluster_of(registry: ClusterRegistry, host: str, expected: str | None) -> None:
    assert registry.subcluster_of("emmy", host) == expected


def test_resolved_hosts_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams import clusters

    registry = ClusterRegistry.load(ARCHIVE)
    monkeypatch.setattr(clusters, "_HOSTS_REMEMBERED", 3)
    answers = [registry.subcluster_of("fritz", host) for host in ("f0101", "nohost", "f0101", "a", "b", "c")]
    assert answers == ["main", None, "main", None, None, None]
    assert registry.subcluster_of("fritz", "f0101") == "main"  # asked again after the memory was cleared
    assert len(registry._clusters["fritz"].host_subclusters) <= 3


def test_unknown_cluster_has_no_subclusters(registry: ClusterRegistry) -> None:
    assert registry.subcluster_of("nope", "f0101") is None
    assert registry.subcluster("nope", "main") is None
    assert registry.get("nope") is None


def test_subcluster_returns_the_raw_entry(registry: ClusterRegistry) -> None:
    spr = registry.subcluster("fritz", "spr2tb")
    assert spr is not None and spr["nodes"] == "f[2181-2188,2281-2288]"
    assert registry.subcluster("fritz", "nope") is None


def test_wildcard_subcluster_takes_unlisted_hosts_after_listed_ones() -> None:
    cluster = minimal(nodes="*")
    cluster["subClusters"].append({**cluster["subClusters"][0], "name": "big", "nodes": "b[01-02]"})
    registry = ClusterRegistry.from_dicts([cluster])
    assert registry.subcluster_of("demo", "b01") == "big"
    assert registry.subcluster_of("demo", "anything") == "main"


def test_empty_first_nodelist_takes_unlisted_hosts_as_in_cc_backend() -> None:
    cluster = minimal(nodes="")
    cluster["subClusters"].append({**cluster["subClusters"][0], "name": "big", "nodes": "b[01-02]"})
    registry = ClusterRegistry.from_dicts([cluster])
    assert registry.subcluster_of("demo", "b02") == "big"
    assert registry.subcluster_of("demo", "x") == "main"


# --- metric config ---------------------------------------------------------------------------


def metrics_by_name(metrics: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in metrics}


def test_cluster_metric_config_is_the_raw_list(registry: ClusterRegistry) -> None:
    assert registry.metric_config("fritz") == real("fritz")["metricConfig"]


def test_fritz_main_has_every_metric_unchanged(registry: ClusterRegistry) -> None:
    main = metrics_by_name(registry.metric_config("fritz", "main"))
    raw = real("fritz")["metricConfig"]
    assert list(main) == [m["name"] for m in raw]
    assert main["flops_any"]["peak"] == 5600 and main["flops_any"]["footprint"] == "avg"
    assert main["mem_used"]["peak"] == 256 and main["mem_used"]["lowerIsBetter"] is True
    assert all("subClusters" not in m for m in main.values())


def test_fritz_spr_overrides_and_removals(registry: ClusterRegistry) -> None:
    spr1 = metrics_by_name(registry.metric_config("fritz", "spr1tb"))
    spr2 = metrics_by_name(registry.metric_config("fritz", "spr2tb"))
    for removed in ("flops_sp", "flops_dp", "mem_bw", "clock"):
        assert removed not in spr1 and removed not in spr2
    assert "flops_any" in spr1 and "flops_any" not in spr2
    assert spr1["flops_any"] == {
        "name": "flops_any",
        "unit": {"base": "Flops/s", "prefix": "G"},
        "scope": "hwthread",
        "aggregation": "sum",
        "footprint": "avg",
        "timestep": 60,
        "peak": 6656,
        "normal": 1500,
        "caution": 400,
        "alert": 50,
    }
    assert (spr1["mem_used"]["peak"], spr2["mem_used"]["peak"]) == (1024, 2048)
    assert spr2["mem_used"]["alert"] == 2000 and spr2["mem_used"]["lowerIsBetter"] is True
    assert spr1["cpu_load"]["peak"] == 104 and spr1["cpu_load"]["footprint"] == "avg"
    assert spr1["cpu_power"] == metrics_by_name(real("fritz")["metricConfig"])["cpu_power"]


def test_override_without_footprint_drops_it_as_cc_backend_does() -> None:
    cluster = minimal()
    cluster["metricConfig"][0] |= {"footprint": "avg", "energy": "power", "lowerIsBetter": True}
    cluster["metricConfig"][0]["subClusters"] = [{"name": "main", "peak": 8}]
    registry = ClusterRegistry.from_dicts([cluster])
    [metric] = registry.metric_config("demo", "main")
    assert metric["peak"] == 8 and metric["normal"] == 2  # omitted thresholds keep the cluster value
    assert "footprint" not in metric and "energy" not in metric and "lowerIsBetter" not in metric


def test_emmy_removals_and_thresholds(registry: ClusterRegistry) -> None:
    haswell = metrics_by_name(registry.metric_config("emmy", "haswell"))
    icelake = metrics_by_name(registry.metric_config("emmy", "icelake"))
    assert "cpu_user" not in haswell and "nfs4_read" not in haswell
    assert "cpu_user" in icelake and "nfs4_read" in icelake
    assert (haswell["cpu_load"]["peak"], icelake["cpu_load"]["peak"]) == (4, 32)


def test_alex_has_no_overrides(registry: ClusterRegistry) -> None:
    for subcluster in ("a40", "a100", "a100m80"):
        assert registry.metric_config("alex", subcluster) == real("alex")["metricConfig"]


def test_metric_config_of_unknown_names_raises(registry: ClusterRegistry) -> None:
    with pytest.raises(KeyError, match="unknown cluster 'nope'"):
        registry.metric_config("nope")
    with pytest.raises(KeyError, match="unknown subcluster 'nope' of cluster 'fritz'"):
        registry.metric_config("fritz", "nope")


def test_metric_config_results_are_copies(registry: ClusterRegistry) -> None:
    registry.metric_config("fritz", "spr1tb")[0]["peak"] = -1
    assert registry.metric_config("fritz", "spr1tb")[0]["peak"] == 104


# --- malformed files -------------------------------------------------------------------------


def test_json_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, "demo", '{\n  "name": "demo",\n  "subClusters": [,]\n}')
    with pytest.raises(ClusterConfigError) as caught:
        ClusterRegistry.load(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid JSON at line 3, column 19: ")


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, "demo", "[]")
    with pytest.raises(ClusterConfigError) as caught:
        ClusterRegistry.load(tmp_path)
    assert str(caught.value) == f"{path}: expected a JSON object, got an empty list"


@pytest.mark.parametrize(
    ("drop", "problem"),
    [
        ("name", "missing 'name'"),
        ("subClusters", "missing 'subClusters'"),
        ("metricConfig", "missing 'metricConfig'"),
    ],
)
def test_missing_required_keys(tmp_path: Path, drop: str, problem: str) -> None:
    cluster = minimal()
    del cluster[drop]
    path = write_cluster(tmp_path, "demo", json.dumps(cluster))
    with pytest.raises(ClusterConfigError) as caught:
        ClusterRegistry.load(tmp_path)
    assert str(caught.value) == f"{path}: {problem}"


def test_bad_nodelist_names_file_subcluster_and_position(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, "demo", json.dumps(minimal(nodes="d[01-04")))
    with pytest.raises(ClusterConfigError) as caught:
        ClusterRegistry.load(tmp_path)
    assert str(caught.value) == (
        f"{path}: subClusters[0] ('main'): invalid nodelist 'd[01-04': unclosed '[' at position 1"
    )


def test_all_structural_problems_are_reported_together() -> None:
    cluster = {"name": "", "subClusters": [{"name": "x"}], "metricConfig": [{"unit": {}}]}
    with pytest.raises(ClusterConfigError) as caught:
        ClusterRegistry.from_dicts([cluster])
    assert str(caught.value) == (
        "cluster: 'name' should be a non-empty string, got ''; subClusters[0]: missing 'nodes'; "
        "metricConfig[0]: missing 'name'"
    )


def test_cluster_name_must_match_directory(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, "other", json.dumps(minimal()))
    with pytest.raises(ClusterConfigError) as caught:
        ClusterRegistry.load(tmp_path)
    assert str(caught.value) == f"{path}: cluster name 'demo' does not match its directory 'other'"


def test_root_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "archive").write_text("")
    with pytest.raises(ClusterConfigError, match="is not a directory"):
        ClusterRegistry.load(tmp_path / "archive")


def test_duplicate_cluster_is_refused() -> None:
    registry = ClusterRegistry.from_dicts([minimal()])
    with pytest.raises(ClusterConfigError, match="cluster 'demo': duplicate cluster 'demo'"):
        registry.add(minimal())


# --- validation and add ----------------------------------------------------------------------


def test_validate_reports_schema_problems_without_rejecting() -> None:
    cluster = minimal()
    metric = cluster["metricConfig"][0]
    metric |= {"scope": "rack", "timestep": 0, "footprint": "median"}
    del metric["peak"]
    metric["subClusters"] = [{"name": "ghost", "remove": "yes"}]
    cluster["subClusters"][0]["socketsPerNode"] = "1"
    del cluster["subClusters"][0]["topology"]["memoryDomain"]
    assert ClusterRegistry.validate(cluster) == [
        "subClusters ('main'): 'socketsPerNode' should be an integer >= 1, got '1'",
        "subClusters ('main').topology: missing 'memoryDomain'",
        "metricConfig ('cpu_load'): 'scope' should be one of "
        "('node', 'socket', 'memoryDomain', 'core', 'hwthread', 'accelerator'), got 'rack'",
        "metricConfig ('cpu_load'): 'timestep' should be an integer >= 1, got 0",
        "metricConfig ('cpu_load'): missing 'peak'",
        "metricConfig ('cpu_load'): 'footprint' should be one of ('avg', 'max', 'min'), got 'median'",
        "metricConfig ('cpu_load').subClusters ('ghost'): no such subcluster",
        "metricConfig ('cpu_load').subClusters ('ghost'): 'remove' should be a boolean, got 'yes'",
    ]
    registry = ClusterRegistry.from_dicts([cluster])  # lenient: loads, and remembers the problems
    assert registry.problems("demo") == ClusterRegistry.validate(cluster)


def test_validate_flags_duplicates() -> None:
    cluster = minimal()
    cluster["metricConfig"].append(copy.deepcopy(cluster["metricConfig"][0]))
    cluster["subClusters"].append(copy.deepcopy(cluster["subClusters"][0]))
    assert validate_cluster(cluster) == [
        "subClusters: duplicate name 'main'",
        "metricConfig ('cpu_load'): duplicate metric",
    ]


def test_validate_structural_problem_is_returned_not_raised() -> None:
    assert validate_cluster({"name": "x", "subClusters": [], "metricConfig": []}) == [
        "'subClusters' should be a non-empty list, got an empty list"
    ]


def test_add_copies_its_input_and_is_seen_by_readers() -> None:
    registry = ClusterRegistry()
    cluster = minimal()
    registry.add(cluster)
    cluster["subClusters"][0]["nodes"] = "zzz"
    assert registry.subcluster_of("demo", "d03") == "main"
    assert registry.names() == ["demo"]


def test_concurrent_adds_and_reads() -> None:
    registry = ClusterRegistry.from_dicts([minimal("base")])
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(2000):
                assert registry.subcluster_of("base", "d01") == "main"
                registry.names()
        except BaseException as exc:  # collected so a failure in a thread fails the test
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(50):
        registry.add(minimal(f"c{i}"))
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(registry) == 51


def test_importing_reads_no_files() -> None:
    """DESIGN: importing never reads config; an audit hook sees every open() the import makes."""
    script = (
        "import sys, hostlist, orjson\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == 'open' else None)\n"
        "import streams.clusters, streams.nodelist\n"
        "print([p for p in opened if not p.endswith(('.py', '.pyc')) and '__pycache__' not in p])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    )
    assert result.stdout.strip() == "[]"
