"""No loss, no double: 20,000 job events through JetStream while `ccstream serve` is killed with -9.

The consuming server is a real subprocess; it is SIGKILLed three times at different points of the
stream and restarted. Afterwards every job is in the read model exactly once in its final state, and
the dead-letter store holds exactly the malformed messages that were mixed in, each once.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest

from tests.ingest.conftest import START, job_line, lp_escape, start_body
from tests.support.server import CcstreamServer

JOBS_SUBJECT = "cc.job.event"
N_JOBS = 10_000
STATES = ["completed", "failed", "cancelled", "timeout"]
KILL_AT = (4_000, 9_000, 14_000)  # events in the log when the server is killed


def _messages(rng: random.Random) -> tuple[list[tuple[bytes, str | None]], dict[int, str], set[bytes]]:
    """(data, Nats-Msg-Id) in publish order, the final state of every job, and the malformed messages."""
    messages: list[tuple[bytes, str | None]] = []
    final: dict[int, str] = {}
    for i in range(N_JOBS):
        job_id, start = 500_000 + i, START + i
        state = STATES[i % len(STATES)]
        final[job_id] = state
        named = i % 2 == 0
        stop: dict[str, Any] = {"jobId": job_id, "cluster": "fritz", "jobState": state, "stopTime": start + 100}
        if i % 3:
            stop["startTime"] = start  # cc-slurm-adapter omits it; others send it
        messages.append((job_line("start_job", start_body(job_id, start, host=f"f01{(i % 88) + 1:02d}"), start),
                         f"start-{job_id}" if named else None))
        messages.append((job_line("stop_job", stop, start + 100), f"stop-{job_id}" if named else None))
    malformed: set[bytes] = set()
    makers = [
        lambda k: f"job,function=start_job event=\"broken {k}".encode(),              # malformed line protocol
        lambda k: job_line("start_job", "{\"jobId\": " + str(k), 1),                   # invalid JSON
        lambda k: job_line("restart_job", {"jobId": k}, 1),                            # unknown function
        lambda k: job_line("start_job", {**start_body(900_000 + k), "colour": k}, 1),  # unknown field
        lambda k: f'job event="{lp_escape(orjson.dumps({"jobId": k}).decode())}" 1'.encode(),  # no function
        lambda k: f"job,function=stop_job value={k}i 1".encode(),                      # not an event
    ]
    for k in range(60):
        data = makers[k % len(makers)](k)
        malformed.add(data)
        position = rng.randrange(len(messages))
        messages.insert(position, (data, f"bad-{k}" if k % 2 else None))
    return messages, final, malformed


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
    finally:
        conn.close()


async def _publish(url: str, messages: list[tuple[bytes, str | None]]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        for chunk in range(0, len(messages), 500):
            await asyncio.gather(*(
                js.publish(JOBS_SUBJECT, data, headers={"Nats-Msg-Id": msg_id} if msg_id else None)
                for data, msg_id in messages[chunk : chunk + 500]
            ))
    finally:
        await nc.close()


async def _consumer_idle(url: str) -> bool:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info("LOSSTEST", "ccstream-job")
        return info.num_pending == 0 and info.num_ack_pending == 0
    finally:
        await nc.close()


@pytest.mark.timeout(900)
def test_kill_9_three_times_loses_and_doubles_nothing(tmp_path: Path, nats_url: str) -> None:
    rng = random.Random(20_000)
    messages, final, malformed = _messages(rng)
    server = CcstreamServer(tmp_path / "site", log_level="warning")
    server.prepare()
    config_path = server.workdir / "config.json"
    config = orjson.loads(config_path.read_bytes())
    config["main"]["api-subjects"] = {"subject-job-event": JOBS_SUBJECT, "job-concurrency": 32}
    config["nats"] = {"address": nats_url, "mode": "jetstream", "reconnect-wait": 0.1,
                      "jetstream": {"stream": "LOSSTEST", "ack-wait": 2, "max-deliver": -1,
                                    "max-ack-pending": 2000}}
    config_path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
    events_db, rejected_db = server.event_db, server.workdir / "var" / "rejected.db"
    logged = "SELECT COUNT(*) FROM events WHERE type IN ('job.started', 'job.stopped')"

    with server:
        server.start()
        publisher = asyncio.new_event_loop()
        task = publisher.create_task(_publish(nats_url, messages))
        kills = 0
        for threshold in KILL_AT:
            deadline = time.monotonic() + 240
            while _count(events_db, logged) < threshold:
                publisher.run_until_complete(asyncio.sleep(0.02))  # keeps publishing meanwhile
                assert time.monotonic() < deadline, f"stuck below {threshold}:\n{server.output_tail()}"
            server.kill9()
            kills += 1
            server.start()
        publisher.run_until_complete(task)
        deadline = time.monotonic() + 240
        while not (_count(events_db, logged) >= 2 * N_JOBS
                   and _count(rejected_db, "SELECT COUNT(*) FROM rejected") >= len(malformed)
                   and publisher.run_until_complete(_consumer_idle(nats_url))):
            assert time.monotonic() < deadline, f"did not drain:\n{server.output_tail()}"
            time.sleep(0.2)
        publisher.close()
        # The read model catches up with the log.
        deadline = time.monotonic() + 120
        while _count(server.job_db, "SELECT COUNT(*) FROM job WHERE job_state != 'running'") < N_JOBS:
            assert time.monotonic() < deadline, "read model did not catch up"
            time.sleep(0.1)

    assert kills == 3 and server.starts == 4
    assert _count(events_db, "SELECT COUNT(*) FROM events WHERE type = 'job.started'") == N_JOBS
    assert _count(events_db, "SELECT COUNT(*) FROM events WHERE type = 'job.stopped'") == N_JOBS
    conn = sqlite3.connect(f"file:{server.job_db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT job_id, job_state, duration FROM job").fetchall()
        parked = conn.execute("SELECT COUNT(*) FROM ccstream_parked_stop").fetchone()[0]
    finally:
        conn.close()
    assert len(rows) == N_JOBS == len({r[0] for r in rows})
    assert {r[0]: r[1] for r in rows} == final
    assert {r[2] for r in rows} == {100}
    assert parked == 0
    conn = sqlite3.connect(f"file:{rejected_db}?mode=ro", uri=True)
    try:
        raws = [bytes(r[0]) for r in conn.execute("SELECT raw FROM rejected")]
    finally:
        conn.close()
    assert len(raws) == len(malformed) and set(raws) == malformed
