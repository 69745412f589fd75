"""Poison payloads over NATS (core and JetStream): each becomes a dead letter naming the field, nothing reaches
the log, and the job database goes on applying what follows."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.ingest.conftest import START, job_line, node_line, start_body, stop_body
from tests.ingest.test_nats import JOBS, MODES, NODES, jobs, publisher, running, settings_for, settled, wait_connected

TOO_BIG = 2**63


def nan_energy_start(job_id: int) -> bytes:
    raw = orjson.dumps(start_body(job_id, energy=0.5)).decode().replace("0.5", "NaN")
    return job_line("start_job", raw, 1)


POISON = [
    (JOBS, job_line("start_job", start_body(TOO_BIG), 1), "jobId"),
    (JOBS, job_line("start_job", start_body(51, startTime=TOO_BIG), 1), "startTime"),
    (JOBS, job_line("start_job", start_body(52, walltime=TOO_BIG), 1), "walltime"),
    (JOBS, nan_energy_start(53), "not valid JSON"),  # NATS decodes `event` with a strict JSON parser
    (JOBS, job_line("start_job", start_body(54, user="a\x00b"), 1), "user"),
    (JOBS, job_line("stop_job", stop_body(50, TOO_BIG), 1), "stopTime"),
    (NODES, node_line({"cluster": "fritz", "nodes": [{"hostname": "f0101", "cpusAllocated": TOO_BIG}]}, 1),
     "cpusAllocated"),
]


@pytest.mark.parametrize("mode", MODES)
async def test_poison_messages_are_dead_letters_and_the_job_database_goes_on(
    mode: str, tmp_path: Path, archive_root: Path, nats_url: str
) -> None:
    async with running(settings_for(tmp_path, archive_root, nats_url, mode)) as services, \
            publisher(nats_url, mode) as publish:
        await wait_connected(services)
        await publish(JOBS, job_line("start_job", start_body(50), 1))
        await settled(services, JOBS, 1)
        head = services.log.head()
        for subject, data, _ in POISON:
            await publish(subject, data)
        await publish(JOBS, job_line("start_job", start_body(60, START + 10), 2))  # behind all of them
        jobs_poison = sum(1 for subject, _, _ in POISON if subject == JOBS)
        c = await settled(services, JOBS, 1 + jobs_poison + 1)
        n = await settled(services, NODES, 1)
        assert (c["applied"], c["rejected"], n["rejected"]) == (2, jobs_poison, 1), (c, n)
        assert services.log.head() == head + 1, "only the good start was appended"
        assert set(jobs(services)) == {50, 60}
        status = services.runner.status()
        assert status.failures == 0 and status.quarantined == 0, status
        assert services.dead_letters is not None
        reasons = sorted(e.reason for e in services.dead_letters.entries())
        for _, _, named in POISON:
            assert any(named in reason for reason in reasons), (named, reasons)
