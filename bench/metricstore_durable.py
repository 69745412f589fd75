"""What `write-mode: durable` costs: `/api/write/` samples/s per write mode, concurrent writers and batch size.

    .venv/bin/python bench/metricstore_durable.py [--runs 3] [--samples 760000]

The same server as bench/metricstore_ingest.py (one core, WAL and snapshots on, Ed25519 JWT checked), fed by
1, 4 and 16 concurrent keep-alive writers of 1,000- and 10,000-line batches, in the default (buffered) and the
durable mode. Each figure is the median of `--runs` runs after a warm-up run that creates every series."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from common import machine_line  # noqa: E402
from metricstore_ingest import bench_http  # noqa: E402

WRITERS = (1, 4, 16)
BATCHES = (1_000, 10_000)
MODES = ("buffered", "durable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=760_000, help="samples per run (380 per node)")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    table: dict[str, dict[str, int]] = {}
    for lines in BATCHES:
        for writers in WRITERS:
            row = table[f"{writers} writers x {lines} lines"] = {}
            for mode in MODES:
                row[mode] = round(bench_http(args.samples, args.runs, lines, writers, mode))
            print(json.dumps({f"{writers} writers x {lines} lines": row}), flush=True)
    print("| writers | lines/batch | buffered samples/s | durable samples/s | durable/buffered |")
    print("|---|---|---|---|---|")
    for key, row in table.items():
        writers, lines = key.split(" writers x ")
        print(f"| {writers} | {lines.removesuffix(' lines')} | {row['buffered']:,} | {row['durable']:,} | "
              f"{row['durable'] / row['buffered']:.2f} |")


if __name__ == "__main__":
    main()
