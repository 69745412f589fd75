"""NATS job events end to end (publish -> visible in the read model), core NATS and JetStream.

Runs a real nats-server and a real `ccstream serve` per mode. For every run it publishes
(1) a sustained stream at a fixed rate and (2) a burst of events as fast as the client can, every
message with a `Nats-Msg-Id`, so each event's id (and through the log its position) is known.
A poller samples the read model's checkpoint every few milliseconds; an event is visible at the
first sample at or past its position. Prints the median over runs of throughput and lag.

    .venv/bin/python bench/nats_intake.py [--runs 3] [--rate 5000] [--seconds 8] [--burst 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nats
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.events import derived_event_id
from tests.support.natsserver import nats_server
from tests.support.server import CcstreamServer, start_payload

SUBJECT = "bench.job.event"


def line(function: str, body: dict[str, object]) -> bytes:
    raw = orjson.dumps(body).decode().replace("\\", "\\\\").replace('"', '\\"')
    return f'job,function={function} event="{raw}" {time.time_ns()}'.encode()


class Checkpoints:
    """Samples the projection checkpoint of job.db in a thread: [(monotonic time, position)]."""

    def __init__(self, db: Path, every: float = 0.005) -> None:
        self.db, self.every = db, every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Checkpoints:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, check_same_thread=False)
        while not self._stop.is_set():
            row = conn.execute("SELECT position FROM ccstream_checkpoint WHERE name = 'jobdb'").fetchone()
            self.samples.append((time.monotonic(), int(row[0]) if row else 0))
            time.sleep(self.every)
        conn.close()

    def position(self) -> int:
        return self.samples[-1][1] if self.samples else 0


@dataclass
class Result:
    events: int
    seconds: float
    lag_p50: float
    lag_p99: float
    lag_max: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def publish(url: str, mode: str, messages: list[tuple[str, bytes]], rate: float | None) -> dict[str, float]:
    """Publish (msg id, data); with `rate`, paced in 10 ms ticks. Returns msg id -> monotonic publish time."""
    sent: dict[str, float] = {}
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    js = nc.jetstream()
    tick = 0.01
    per_tick = max(1, int(rate * tick)) if rate else 1000
    started = time.monotonic()
    try:
        for index in range(0, len(messages), per_tick):
            chunk = messages[index : index + per_tick]
            now = time.monotonic()
            for msg_id, _ in chunk:
                sent[msg_id] = now
            if mode == "jetstream":
                await asyncio.gather(*(js.publish(SUBJECT, d, headers={"Nats-Msg-Id": m}) for m, d in chunk))
            else:
                for msg_id, data in chunk:
                    await nc.publish(SUBJECT, data, headers={"Nats-Msg-Id": msg_id})
                await nc.flush()
            if rate:
                due = started + (index + len(chunk)) / rate
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
    finally:
        await nc.close()
    return sent


def jobs(first: int, count: int, start_time: int) -> list[tuple[str, bytes]]:
    """Start and stop messages for `count` jobs: start i, then stop i a few jobs later (interleaved)."""
    starts = [(f"s-{first + i}", line("start_job", start_payload(first + i, start_time + i, host_index=i)))
              for i in range(count)]
    stops = [(f"e-{first + i}", line("stop_job", {"jobId": first + i, "cluster": "fritz", "startTime": start_time + i,
                                                    "stopTime": start_time + i + 60, "jobState": "completed"}))
             for i in range(count)]
    out: list[tuple[str, bytes]] = []
    lag = 16
    for i in range(count + lag):
        if i < count:
            out.append(starts[i])
        if i >= lag:
            out.append(stops[i - lag])
    return out


def measure(server: CcstreamServer, url: str, mode: str, messages: list[tuple[str, bytes]],
            rate: float | None) -> Result:
    with Checkpoints(server.job_db) as checkpoints:
        sent = asyncio.run(publish(url, mode, messages, rate))
        ids = {derived_event_id("nats-msg", m, 1): m for m, _ in messages}
        conn = sqlite3.connect(f"file:{server.event_db}?mode=ro", uri=True)
        positions: dict[str, int] = {}
        deadline = time.monotonic() + 300
        while len(positions) < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(positions)} of {len(ids)} events in the log (core NATS drops?)")
            wanted = [i for i in ids if i not in positions]
            for chunk in range(0, len(wanted), 900):
                part = wanted[chunk : chunk + 900]
                marks = ",".join("?" * len(part))
                positions.update(conn.execute(f"SELECT id, position FROM events WHERE id IN ({marks})", part))
            time.sleep(0.05)
        conn.close()
        last = max(positions.values())
        while checkpoints.position() < last:
            time.sleep(0.005)
        samples = list(checkpoints.samples)
    lags = []
    first_sent = min(sent.values())
    visible_last = 0.0
    times = [t for t, _ in samples]
    for event_id, position in positions.items():
        # Binary search of the first sample whose checkpoint reached the position.
        lo, hi = 0, len(samples) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if samples[mid][1] >= position:
                hi = mid
            else:
                lo = mid + 1
        seen = times[lo]
        lags.append(max(0.0, seen - sent[ids[event_id]]))
        visible_last = max(visible_last, seen)
    lags.sort()
    return Result(len(lags), visible_last - first_sent, lags[len(lags) // 2], lags[int(len(lags) * 0.99) - 1],
                  lags[-1])


def run_mode(mode: str, args: argparse.Namespace, url: str, workdir: Path) -> dict[str, list[Result]]:
    server = CcstreamServer(workdir / mode, log_level="warning")
    server.prepare()
    config = orjson.loads((server.workdir / "config.json").read_bytes())
    config["main"]["api-subjects"] = {"subject-job-event": SUBJECT, "job-concurrency": args.concurrency}
    config["nats"] = {"address": url, "mode": mode,
                      "jetstream": {"stream": f"BENCH_{mode.upper()}", "max-ack-pending": 4000, "fetch-batch": 512}}
    (server.workdir / "config.json").write_bytes(orjson.dumps(config))
    results: dict[str, list[Result]] = {"sustained": [], "burst": []}
    with server:
        server.start()
        time.sleep(1.0)  # connected and subscribed
        first = 1_000_000
        for run in range(args.runs):
            count = int(args.rate * args.seconds) // 2
            results["sustained"].append(measure(server, url, mode, jobs(first, count, 1_700_000_000), args.rate))
            first += count
            count = args.burst // 2
            results["burst"].append(measure(server, url, mode, jobs(first, count, 1_700_000_000), None))
            first += count
            print(f"  {mode} run {run + 1}: sustained {results['sustained'][-1]}, burst {results['burst'][-1]}",
                  file=sys.stderr)
    return results


def median(results: list[Result], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=5000.0, help="events/s of the sustained phase")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the sustained phase")
    parser.add_argument("--burst", type=int, default=50_000, help="events in the burst phase")
    parser.add_argument("--concurrency", type=int, default=64, help="main.api-subjects.job-concurrency")
    parser.add_argument("--modes", default="core,jetstream")
    args = parser.parse_args()
    print(f"nproc {os.cpu_count()}, {args.runs} runs, sustained {args.rate:.0f} ev/s x {args.seconds:.0f} s, "
          f"burst {args.burst} events, job-concurrency {args.concurrency}")
    with tempfile.TemporaryDirectory(prefix="bench-nats-") as tmp, nats_server(Path(tmp) / "nats") as server:
        for mode in args.modes.split(","):
            results = run_mode(mode, args, server.url, Path(tmp))
            for phase, rs in results.items():
                print(f"{mode:9} {phase:9}: {median(rs, 'rate'):7.0f} events/s end to end, "
                      f"lag p50 {median(rs, 'lag_p50') * 1000:6.0f} ms, p99 {median(rs, 'lag_p99') * 1000:6.0f} ms, "
                      f"max {median(rs, 'lag_max') * 1000:6.0f} ms ({rs[0].events} events, median of {len(rs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
