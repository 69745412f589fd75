"""Nodelist expressions: cc-backend's syntax, zero-padding rules, errors and large ranges."""

from __future__ import annotations

import time

import pytest

from streams.nodelist import NodeList, NodeListError, parse_nodelist

FRITZ_MAIN = (
    "f[0101-0188,0201-0288,0301-0388,0401-0488,0501-0588,0601-0688,0701-0788,"
    "0801-0888,0901-0988,1001-1088,1101-1156,1201-1256]"
)


@pytest.mark.parametrize("host", ["f0101", "f0150", "f0188"])
def test_zero_padded_range_contains_members(host: str) -> None:
    assert NodeList.parse("f[0101-0188]").contains(host)


@pytest.mark.parametrize(
    "host",
    [
        "f101",  # missing the padding
        "f0189",  # past the end
        "f0100",  # before the start
        "f01010",  # one digit too many
        "f00101",  # extra leading zero
        "f",
        "",
        "g0101",
        "f0101x",
        "F0101",
    ],
)
def test_zero_padded_range_rejects_near_misses(host: str) -> None:
    assert not NodeList.parse("f[0101-0188]").contains(host)


def test_several_ranges_in_one_bracket() -> None:
    nodes = NodeList.parse("a[1000-2000,2010-2090]")
    assert nodes.contains("a1000") and nodes.contains("a2000") and nodes.contains("a2050")
    assert not nodes.contains("a2005")
    assert not nodes.contains("a2091")


def test_prefix_ending_in_digits() -> None:
    nodes = NodeList.parse("m0[1-9]")
    assert nodes.contains("m01") and nodes.contains("m09")
    assert not nodes.contains("m1")
    assert not nodes.contains("m010")


def test_top_level_comma_terms_and_plain_hostnames() -> None:
    nodes = NodeList.parse("f[0101-0188],g[01-10],special01")
    assert [h for h in ("f0101", "g10", "special01", "g11", "special1", "special011") if h in nodes] == [
        "f0101",
        "g10",
        "special01",
    ]


def test_plain_hostname_with_dots_and_underscores() -> None:
    nodes = NodeList.parse("login.cluster_a,node-x")
    assert nodes.contains("login.cluster_a") and nodes.contains("node-x")
    assert not nodes.contains("login")


def test_suffix_after_range() -> None:
    nodes = NodeList.parse("r[01-04]n[001-100]-ib")
    assert nodes.contains("r03n042-ib")
    assert not nodes.contains("r03n042")
    assert not nodes.contains("r05n042-ib")


def test_single_numbers_in_brackets() -> None:
    nodes = NodeList.parse("x[01,05,10-12]")
    assert nodes.expand() == ["x01", "x05", "x10", "x11", "x12"]
    assert not nodes.contains("x02")


def test_unequal_width_bounds_follow_hostlist_semantics() -> None:
    """cc-backend rejects these; Slurm and python-hostlist pad to the start's width, and so do we."""
    nodes = NodeList.parse("n[8-12],p[010-12]")
    assert nodes.expand() == ["n8", "n9", "n10", "n11", "n12", "p010", "p011", "p012"]
    assert all(nodes.contains(h) for h in nodes.expand())
    assert not nodes.contains("n08")
    assert not nodes.contains("p10")


def test_wildcard_matches_everything_but_cannot_be_listed() -> None:
    nodes = NodeList.parse("*")
    assert nodes.is_wildcard
    assert nodes.contains("anything-at-all")
    with pytest.raises(ValueError, match="cannot be expanded"):
        nodes.expand()


def test_empty_expression_matches_nothing() -> None:
    nodes = NodeList.parse("")
    assert not nodes.contains("")
    assert not nodes.contains("f0101")
    assert nodes.expand() == []
    assert nodes.count() == 0


def test_real_fritz_main_nodelist() -> None:
    nodes = parse_nodelist(FRITZ_MAIN)
    assert nodes.contains("f0101") and nodes.contains("f1256") and nodes.contains("f0888")
    assert not nodes.contains("f0089") and not nodes.contains("f1257") and not nodes.contains("f2157")
    assert nodes.count() == 10 * 88 + 2 * 56
    assert len(nodes.expand()) == 992


def test_importer_style_nodelist_with_repeated_term() -> None:
    nodes = NodeList.parse("f01[01-88],f03[01-88],f03[01-88]")
    assert nodes.contains("f0388")
    assert nodes.count() == 3 * 88  # counted as cc-backend's NodeCount does
    assert len(nodes.expand()) == 2 * 88  # listing drops the repeat


def test_large_range_is_checked_without_expansion() -> None:
    nodes = NodeList.parse("x[0-99999999],y[00000000-99999999]")
    started = time.perf_counter()
    for _ in range(1000):
        assert nodes.contains("x99999999")
        assert nodes.contains("y00000042")
        assert not nodes.contains("x100000000")
        assert not nodes.contains("y42")
    assert time.perf_counter() - started < 0.5
    assert nodes.count() == 200_000_000


def test_expand_refuses_more_than_limit() -> None:
    with pytest.raises(ValueError, match=r"'x\[0-99999999\]' has 100000000 nodes, more than the limit 1000"):
        NodeList.parse("x[0-99999999]").expand(limit=1000)
    assert NodeList.parse("m0[1-9]").expand(limit=9) == [f"m0{i}" for i in range(1, 10)]


@pytest.mark.parametrize(
    ("expression", "position", "problem"),
    [
        ("f[0101-0188", 1, "unclosed '['"),
        ("f0101]", 5, "unmatched ']'"),
        ("f[01-0x]", 6, "invalid character 'x' in range"),
        ("f[aa-bb]", 2, "invalid character 'a' in range"),
        ("f[]", 1, "empty '[]'"),
        ("f[01-]", 5, "missing number in range"),
        ("f[-01]", 2, "missing number in range"),
        ("f[01,,03]", 5, "missing number in range"),
        ("f[02-01]", 2, "range start 02 is greater than end 01"),
        ("f[[01-02]]", 2, "nested '['"),
        ("a,,b", 2, "empty term"),
        ("a,", 2, "empty term"),
        (",a", 0, "empty term"),
        ("f01 f02", 3, "invalid character ' '"),
        ("f*", 1, "'*' is only valid as the whole expression"),
        ("*,f01", 0, "'*' is only valid as the whole expression"),
        ("g[01-10],f[0101-0188", 10, "unclosed '['"),
    ],
)
def test_malformed_expressions_name_expression_and_position(expression: str, position: int, problem: str) -> None:
    with pytest.raises(NodeListError) as caught:
        NodeList.parse(expression)
    assert str(caught.value) == f"invalid nodelist {expression!r}: {problem} at position {position}"
    assert caught.value.position == position
    assert isinstance(caught.value, ValueError)


def test_equality_and_repr_follow_the_expression() -> None:
    assert NodeList.parse("a[01-02]") == NodeList.parse("a[01-02]")
    assert NodeList.parse("a[01-02]") != NodeList.parse("a[01-03]")
    assert repr(NodeList.parse("a01")) == "NodeList('a01')"
    assert 42 not in NodeList.parse("*")
