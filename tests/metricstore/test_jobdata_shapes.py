"""Planning with shared per-host shapes, and the archiver's float64 series arrays."""

from __future__ import annotations

import numpy as np

from archive.backends.codec import encode_json
from metricstore.clusters import MetricInfo, Topology
from metricstore.jobdata import Group, JobResource, Plan, Shape, ShapeCache, plan_shapes, series_entries

TOPO = Topology(node=(0, 1, 2, 3), socket=((0, 1), (2, 3)), memory_domain=((0, 1), (2, 3)),
                core=((0, 2), (1, 3)), accelerators=("a0", "a1"))


def rows() -> np.ndarray:
    """Float32 values that print differently as float32 and as float64, a gap, and a row without values."""
    return np.array([[0.1, np.nan, 3.3], [np.nan, np.nan, np.nan], [1e-7, 2.5, 123456.789]], np.float32)


def test_exact_arrays_serialise_byte_for_byte_like_lists() -> None:
    groups = [Group("h", "0", "core", ("0",)), Group("h", "1", "core", ("1",)), Group("h", None, None)]
    lists = series_entries(groups, rows())
    exact = series_entries(groups, rows(), as_lists=False, exact_arrays=True)
    assert encode_json({"series": exact}) == encode_json({"series": lists})
    assert all(isinstance(entry["data"], np.ndarray) and entry["data"].dtype == np.float64 for entry in exact)
    # float32 arrays print the shortest float32 digits: fine for views, not for the archive
    assert encode_json({"series": series_entries(groups, rows(), as_lists=False)}) != encode_json({"series": lists})


def test_statistics_are_plain_floats_and_none_without_values() -> None:
    entries = series_entries([Group("h", None, None)] * 3, rows())
    assert entries[1]["statistics"] == {"min": None, "avg": None, "max": None}
    assert all(type(v) is float for v in entries[0]["statistics"].values())
    assert entries[0]["statistics"]["min"] == float(np.float32(0.1))


def test_core_shapes_carry_their_level_prefixes() -> None:
    shapes = plan_shapes("hwthread", "core", None, None, TOPO)
    assert shapes is not None
    assert [(s.id, s.type_ids, s.prefixes) for s in shapes] == [
        ("0", ("0", "2"), ("hwthread0", "hwthread2")), ("1", ("1", "3"), ("hwthread1", "hwthread3"))]
    assert plan_shapes("node", "node", None, None, None) == (Shape(None, None, (), ("",)),)
    assert plan_shapes("socket", "core", None, None, TOPO) is None


def test_shape_cache_answers_as_plan_shapes_and_tells_equal_topologies_apart() -> None:
    cache = ShapeCache(limit=2)
    twin = Topology(TOPO.node, TOPO.socket, TOPO.memory_domain, ((0, 1), (2, 3)), TOPO.accelerators)
    first = cache.shapes("hwthread", "core", JobResource("x"), TOPO)
    assert first == plan_shapes("hwthread", "core", None, None, TOPO)
    assert cache.shapes("hwthread", "core", JobResource("y"), TOPO) is first  # shared, whatever the host
    assert cache.shapes("hwthread", "core", JobResource("x"), twin) == plan_shapes("hwthread", "core", None, None, twin)
    assert cache.shapes("hwthread", "core", JobResource("x", (0, 1)), TOPO) == \
        plan_shapes("hwthread", "core", (0, 1), None, TOPO)
    assert len(cache._entries) <= 2  # cleared when full


def test_plan_groups_name_each_host() -> None:
    shapes = plan_shapes("accelerator", "accelerator", None, None, TOPO)
    assert shapes is not None
    plan = Plan(MetricInfo("acc_power", 60, "sum", "accelerator"), "accelerator", (("h1", shapes), ("h2", shapes[:1])))
    assert plan.groups == [Group("h1", "a0", "accelerator", ("a0",)), Group("h1", "a1", "accelerator", ("a1",)),
                           Group("h2", "a0", "accelerator", ("a0",))]
