"""The shipped cluster templates are valid cc-backend cluster.json files that ccstream loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from streams.clusters import ClusterRegistry
from tests.support.specs import find_specs

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = find_specs() / "schemas"
TEMPLATES = sorted((ROOT / "configs" / "clusters").glob("*.json"))


def validator() -> Draft202012Validator:
    resources = []
    for path in SCHEMAS.glob("*.schema.json"):
        schema = json.loads(path.read_text())
        resources.append((schema.get("$id", f"embedfs://{path.name}"), DRAFT202012.create_resource(schema)))
    registry: Registry = Registry().with_resources(resources)
    # cc-backend's schemas name the dialect with http://, which jsonschema does not recognise by itself.
    schema = json.loads((SCHEMAS / "cluster.schema.json").read_text())
    schema.pop("$schema", None)
    return Draft202012Validator(schema, registry=registry)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_validates_against_cc_backend_schema(path: Path) -> None:
    document = json.loads(path.read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator().iter_errors(document)]
    assert errors == []


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_loads_without_problems(path: Path) -> None:
    cluster = json.loads(path.read_text())
    registry = ClusterRegistry.from_dicts([cluster])
    assert registry.problems(cluster["name"]) == []
    first_sub = cluster["subClusters"][0]
    first_host = registry_first_host(first_sub["nodes"])
    assert registry.subcluster_of(cluster["name"], first_host) == first_sub["name"]


def registry_first_host(nodes: str) -> str:
    from streams.nodelist import NodeList

    return NodeList.parse(nodes).expand(limit=10_000)[0]


def test_there_is_a_cpu_and_a_gpu_cluster() -> None:
    clusters = [json.loads(p.read_text()) for p in TEMPLATES]
    gpu = [c for c in clusters if any("accelerators" in s["topology"] for s in c["subClusters"])]
    cpu = [c for c in clusters if c not in gpu]
    assert gpu and cpu
    names = {m["name"] for m in gpu[0]["metricConfig"]}
    assert {"cpu_load", "flops_any", "mem_bw", "mem_used", "cpu_power", "acc_utilization", "acc_power"} <= names
