"""Line-protocol ingest: every line kind of metrics.lp, timestamp units, each rejection reason."""

from __future__ import annotations

import numpy as np
import pytest

from metricstore.lineproto import parse_fast, parse_lines, to_seconds
from metricstore.store import MetricStore
from tests.metricstore.conftest import T0


def value_at(store: MetricStore, cluster: str, host: str, metric: str, level: str, ts: int) -> float:
    levels = store.levels(cluster, host, metric)
    assert levels is not None and level in levels, (metric, level, levels)
    bid, row = levels[level]
    values, steps = store.read(bid, np.array([row]), ts, ts + 1)
    return float(values[0, 0]) if steps else float("nan")


def test_every_line_kind_of_metrics_lp_is_stored(store: MetricStore, metrics_lp: bytes) -> None:
    report = store.ingest_lines(metrics_lp, "fritz")
    assert report.errors == []
    # proc_run and nv_nvlink_crc_errors are not in fritz/alex cluster.json: dropped and counted, not errors
    assert report.dropped_unknown_metric == 2 and report.unknown_metrics == {"proc_run", "nv_nvlink_crc_errors"}
    assert report.accepted == 14
    expect = [
        ("fritz", "f0649", "cpu_load", "", 31.64), ("fritz", "f0649", "mem_used", "", 6.16),
        ("fritz", "f0649", "ib_recv", "", 14442.82), ("fritz", "f0649", "mem_bw", "socket0", 2.65),
        ("fritz", "f0649", "mem_bw", "socket1", 2.23), ("fritz", "f0649", "cpu_power", "socket0", 75.78),
        ("fritz", "f0649", "mem_bw", "memoryDomain3", 1.12), ("fritz", "f0649", "cpu_user", "core42", 28.54),
        ("fritz", "f0649", "flops_any", "hwthread0", 0.61), ("fritz", "f0649", "flops_any", "hwthread1", 0.62),
        ("fritz", "f0649", "cpu_user", "hwthread2", 57.3),
        ("alex", "a0603", "acc_utilization", "accelerator00000000:0E:00.0", 87.0),
        ("alex", "a0603", "acc_power", "accelerator00000000:0E:00.0", 251.5),
        ("fritz", "f0650", "cpu_load", "", 18.4),  # no cluster tag: the default cluster
    ]
    for cluster, host, metric, level, value in expect:
        assert value_at(store, cluster, host, metric, level, T0) == pytest.approx(value, rel=1e-6)
    stats = store.stats()
    assert stats["samples_accepted"] == 14 and stats["samples_dropped_unknown_metric"] == 2


def test_integer_unsigned_and_stype_lines(make_store, metrics_lp: bytes) -> None:
    store = make_store({"metrics": {"proc_run": {"frequency": 60, "aggregation": "sum"},
                                    "nv_nvlink_crc_errors": {"frequency": 60, "aggregation": "sum"}}})
    lines = metrics_lp + b"\nproc_run,cluster=fritz,hostname=f0651,type=node value=7u 1675954380\n"
    report = store.ingest_lines(lines, "fritz")
    assert report.errors == [] and report.dropped_unknown_metric == 0 and report.accepted == 17
    assert value_at(store, "fritz", "f0649", "proc_run", "", T0) == 4.0
    assert value_at(store, "fritz", "f0651", "proc_run", "", T0) == 7.0
    nvlink = "accelerator00000000:0E:00.0/nvlink2"
    assert value_at(store, "alex", "a0603", "nv_nvlink_crc_errors", nvlink, T0) == 0.0


def test_fast_and_per_line_parsers_agree(metrics_lp: bytes) -> None:
    body = b"\n".join(line for line in metrics_lp.splitlines() if not line.startswith(b"#"))
    fast, slow = parse_fast(body), parse_lines(body, 0)
    assert fast is not None and fast.lines is None
    assert [fast.series[i] for i in fast.series_idx] == [slow.series[i] for i in slow.series_idx]
    assert np.array_equal(fast.values, slow.values) and np.array_equal(fast.times, slow.times)


@pytest.mark.parametrize("ts", [T0, T0 * 1000, T0 * 1_000_000, T0 * 1_000_000_000])
def test_timestamp_units_by_magnitude(store: MetricStore, ts: int) -> None:
    assert to_seconds(ts) == T0
    report = store.ingest_lines(f"cpu_load,cluster=fritz,hostname=h1,type=node value=1.5 {ts}\n".encode())
    assert report.accepted == 1 and report.errors == []
    assert value_at(store, "fritz", "h1", "cpu_load", "", T0) == 1.5


def test_missing_timestamp_uses_the_clock(store: MetricStore, clock) -> None:
    report = store.ingest_lines(b"cpu_load,cluster=fritz,hostname=h1 value=2\n")
    assert report.accepted == 1
    assert value_at(store, "fritz", "h1", "cpu_load", "", int(clock.now)) == 2.0


BAD = [
    (b"cpu_load,cluster=fritz,hostname=h1 value=abc 1675954380", "parse_error", "invalid number 'abc'"),
    (b"cpu_load,cluster=fritz,hostname=h1 value=t 1675954380", "parse_error", "boolean"),
    (b'cpu_load,cluster=fritz,hostname=h1 value="x" 1675954380', "parse_error", "string"),
    (b"cpu_load,cluster=fritz,hostname=h1 other=1 1675954380", "parse_error", "no field 'value'"),
    (b"cpu_load,cluster=fritz,hostname=h1 value=1.5i 1675954380", "parse_error", "invalid integer"),
    (b"cpu_load,cluster=fritz,hostname=h1 value=-1u 1675954380", "parse_error", "unsigned"),
    (b"cpu_load,cluster=fritz,hostname=h1 value=1 17x", "parse_error", "invalid timestamp"),
    (b"cpu_load,cluster=fritz,hostname=h1", "parse_error", "expected"),
    (b"cpu_load,cluster=fritz,hostname=h1,broken value=1 1675954380", "parse_error", "malformed tag"),
    (b"cpu_load,cluster=fritz value=1 1675954380", "missing_host", "hostname"),
    (b"cpu_load,hostname=h1 value=1 1675954380", "missing_cluster", "no cluster tag"),
    (b"cpu_load,cluster=nowhere,hostname=h1 value=1 1675954380", "unknown_cluster", "unknown cluster"),
    (b"cpu_load,cluster=fritz,hostname=../etc value=1 1675954380", "invalid_name", "invalid hostname"),
    (b"cpu_load,cluster=fr/itz,hostname=h1 value=1 1675954380", "invalid_name", "invalid cluster"),
    (b"cpu_load,cluster=fritz,hostname=a\\\\b value=1 1675954380", "invalid_name", "invalid hostname"),
    (b"mem_bw,cluster=fritz,hostname=h1,type=socket value=1 1675954380", "parse_error", "type-id"),
    (b"cpu_load,cluster=fritz,hostname=h1 value=1 1775954380", "future_timestamp", "ahead"),
    (b"\xff\xfe,cluster=fritz,hostname=h1 value=1 1675954380", "parse_error", "UTF-8"),
]


@pytest.mark.parametrize(("line", "reason", "text"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_line_is_reported_with_its_number_and_the_rest_is_stored(store: MetricStore, line: bytes,
                                                                       reason: str, text: str) -> None:
    good = b"cpu_load,cluster=fritz,hostname=ok value=3 1675954380"
    report = store.ingest_lines(b"\n".join([good, line, good.replace(b"ok", b"ok2")]) + b"\n")
    assert [(e[0], e[1]) for e in report.errors] == [(2, reason)]
    assert text in report.errors[0][2]
    assert "line 2:" in report.message()
    assert report.accepted == 2
    assert value_at(store, "fritz", "ok2", "cpu_load", "", T0) == 3.0
    assert store.stats()["lines_rejected_by_reason"] == {reason: 1}


def test_too_old_samples_are_dropped_and_counted(make_store) -> None:
    store = make_store({"retention-in-memory": "1h"})
    assert store.ingest_lines(f"cpu_load,cluster=fritz,hostname=h1 value=1 {T0}\n".encode()).accepted == 1
    report = store.ingest_lines(f"cpu_load,cluster=fritz,hostname=h1 value=2 {T0 - 7200}\n".encode())
    assert report.accepted == 0 and report.dropped_old == 1 and report.ok
    assert store.stats()["samples_dropped_old"] == 1


def test_late_and_repeated_samples_go_to_their_slot(store: MetricStore) -> None:
    for ts, value in [(T0, 1), (T0 + 120, 3), (T0 + 60, 2), (T0 + 121, 4)]:
        store.ingest_lines(f"cpu_load,cluster=fritz,hostname=h1 value={value} {ts}\n".encode())
    bid, row = store.levels("fritz", "h1", "cpu_load")[""]
    values, steps = store.read(bid, np.array([row]), T0, T0 + 180)
    assert steps == 3 and values[0].tolist() == [1.0, 2.0, 4.0]


def test_escaped_tags_and_comments(store: MetricStore) -> None:
    body = b"# a comment\n\ncpu_load,cluster=fritz,hostname=f0101,extra=a\\,b,note=x\\ y\\=z value=5 1675954380\n"
    report = store.ingest_lines(body)
    assert report.errors == [] and report.accepted == 1
    assert value_at(store, "fritz", "f0101", "cpu_load", "", T0) == 5.0


@pytest.mark.parametrize(("host", "shown"), [
    ("\uff46\uff10\uff11\uff10\uff11", "'\uff46' (U+FF46 FULLWIDTH LATIN SMALL LETTER F)"),
    ("f01\u043001", "'\u0430' (U+0430 CYRILLIC SMALL LETTER A)"),
    ("my\\ host", "' ' (U+0020 SPACE)"),
])
def test_confusable_host_names_are_refused_with_the_character_named(store: MetricStore, host: str,
                                                                    shown: str) -> None:
    body = (f"cpu_load,cluster=fritz,hostname={host} value=5 1675954380\n"
            "cpu_load,cluster=fritz,hostname=f0102 value=6 1675954380\n")
    report = store.ingest_lines(body.encode())
    [(line, reason, message)] = report.errors
    assert (line, reason, report.accepted) == (1, "invalid_hostname", 1)
    assert shown in message and "host names are ASCII letters, digits, '-', '_' and '.'" in message
