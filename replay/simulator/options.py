"""Command-line options of `ccstream simulate`, apart from the simulator itself: every `ccstream` start
builds its argument parser, and the simulator's modules (httpx, numpy) would cost it 0.15 s."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

#: The cluster templates shipped with ccstream (a CPU and a GPU cluster).
TEMPLATES = Path(__file__).resolve().parents[2] / "configs" / "clusters"


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `ccstream simulate`."""
    parser.add_argument("--url", default="http://localhost:8080",
                        help="ccstream (or cc-backend) base URL; asked for its clusters before anything is "
                             "sent, also with the NATS transports")
    parser.add_argument("--token", default=os.environ.get("CCSTREAM_TOKEN", ""),
                        help="JWT with the api role (default: $CCSTREAM_TOKEN)")
    parser.add_argument("--cluster", action="append", default=[], metavar="CLUSTER_JSON",
                        help="cluster.json to simulate (repeatable; default: the shipped templates)")
    parser.add_argument("--nodes", type=int, default=None, help="hosts per cluster (default: all of the nodelist)")
    parser.add_argument("--jobs-per-hour", type=float, default=None, help="arrival rate (default: fills the nodes)")
    parser.add_argument("--interval", type=int, default=60, help="seconds between metric samples (simulated)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per second (60: an hour a minute); simulated time never runs "
                             "ahead of the wall clock: once it reaches now it goes on in real time")
    parser.add_argument("--duration", type=float, default=None, help="simulated seconds to run (default: forever)")
    parser.add_argument("--seed", type=int, default=1, help="random seed: the same seed sends the same events")
    parser.add_argument("--start", type=int, default=None,
                        help="simulated start time, not in the future (default: now minus duration x "
                             "(1 - 1/speed), so that an accelerated run ends at the present; now without "
                             "--duration)")
    parser.add_argument("--transport", choices=["rest", "nats"], default="rest", help="how job events are sent")
    parser.add_argument("--metrics", choices=["http", "nats", "none"], default="http", help="how samples are sent")
    parser.add_argument("--detail", choices=["full", "node"], default="full",
                        help="samples at every metric's native scope, or one node-level line per metric")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222",
                        help="NATS server for --transport/--metrics nats")
    parser.add_argument("--job-subject", default="cc.job.event", help="NATS subject of job events")
    parser.add_argument("--node-subject", default="cc.node.state", help="NATS subject of node states")
    parser.add_argument("--metric-subject", default="hpc-metrics", help="NATS subject of metric lines")
