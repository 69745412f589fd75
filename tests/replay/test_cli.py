"""`ccstream replay …` as an operator runs it: real files, real subprocesses, one error line and exit 1."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from api.cli import main
from streams.log import SQLiteEventLog
from tests.replay.factory import bulk_jobs, edits, job_subject

ROOT = Path(__file__).resolve().parents[2]


def ccstream_process(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point in its own process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def ccstream(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Ran]:
    """`main()` in this process (starting a process per call costs seconds): same parser, output, exit codes."""

    def run(cwd: Path, *args: str) -> Ran:
        capsys.readouterr()
        monkeypatch.chdir(cwd)
        code = main(list(args))
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run


@pytest.fixture
def site(tmp_path: Path) -> Path:
    config = {"main": {"db": "./var/job.db"}, "event-log": {"kind": "sqlite", "path": "./var/events.db"}}
    (tmp_path / "config.json").write_bytes(orjson.dumps(config))
    log = SQLiteEventLog(tmp_path / "var" / "events.db")
    log.append(bulk_jobs(1, 300))
    log.append(edits([job_subject("fritz", j, 1_700_000_000 + j * 7) for j in range(1, 301)], 200))
    log.close()
    return tmp_path


def test_rebuild_verify_and_a_tampered_model(site: Path) -> None:
    rebuilt = ccstream_process(site, "replay", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "jobdb: replayed 776 events" in rebuilt.stdout and "swapped into var/job.db" in rebuilt.stdout
    ok = ccstream_process(site, "replay", "verify", "jobdb")
    assert ok.returncode == 0, ok.stderr
    assert "jobdb: identical to a rebuild at position 776" in ok.stdout
    with sqlite3.connect(site / "var" / "job.db") as conn:
        conn.execute("UPDATE job SET job_state = 'timeout' WHERE job_id BETWEEN 1 AND 30 AND job_state != 'timeout'")
    failed = ccstream_process(site, "replay", "verify", "--max-diffs", "3")
    assert failed.returncode == 1
    assert failed.stdout.startswith("job [job_id=1 cluster='fritz' start_time=1700000007] job_state: live 'timeout'")
    assert "… and " in failed.stdout
    [error] = failed.stderr.strip().splitlines()[-1:]
    assert error.startswith("ccstream: jobdb differs from a rebuild at position 776:") and "(job " in error
    unknown = ccstream_process(site, "replay", "verify", "nodes")
    assert unknown.returncode == 1 and "unknown read model(s) nodes; known: jobdb" in unknown.stderr


def test_time_travel_writes_only_the_output(site: Path, ccstream: Callable[..., Ran]) -> None:
    assert ccstream(site, "replay", "rebuild").returncode == 0
    live = (site / "var" / "job.db").read_bytes()
    then = ccstream(site, "replay", "rebuild", "--until", "100", "--output", "then.db")
    assert then.returncode == 0, then.stderr
    assert "as of position 100 written to then.db" in then.stdout
    with sqlite3.connect(site / "then.db") as conn:
        assert conn.execute("SELECT position FROM ccstream_checkpoint").fetchone() == (100,)
        assert conn.execute("SELECT COUNT(*) FROM job").fetchone() == (100,)
    assert (site / "var" / "job.db").read_bytes() == live
    for args, message in [
        (("--until", "100"), "--until needs --output"),
        (("--until", "100", "--output", "var/job.db"), "is a live read model"),
        (("--until", "100", "--output", "then.db"), "then.db exists; use --force"),
        (("--until", "soon", "--output", "x.db"), "expected a position"),
        (("--output", "x.db"), "--output is only for --until"),
    ]:
        result = ccstream(site, "replay", "rebuild", *args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)


def test_export_import_round_trip_and_malformed_lines(
    site: Path, tmp_path: Path, ccstream: Callable[..., Ran]
) -> None:
    exported = ccstream(site, "replay", "export", "--output", "all.jsonl")
    assert exported.returncode == 0 and "exported 776 events" in exported.stderr
    partial = ccstream(site, "replay", "export", "--after", "771")
    assert len(partial.stdout.splitlines()) == 5
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_bytes((site / "config.json").read_bytes())
    data = (site / "all.jsonl").read_bytes().splitlines(keepends=True)
    (other / "in.jsonl").write_bytes(b"".join([data[0], b"garbage\n", *data[1:]]))
    first = ccstream(other, "replay", "import", "in.jsonl")
    assert first.returncode == 1
    assert "read 777 lines: 776 events appended, 0 already in the log, 1 malformed lines skipped" in first.stdout
    assert "line 2: not JSON" in first.stderr
    (other / "in.jsonl").write_bytes(b"".join(data))
    again = ccstream(other, "replay", "import", "in.jsonl")
    assert again.returncode == 0 and "0 events appended, 776 already in the log" in again.stdout
    assert ccstream(other, "replay", "rebuild").returncode == 0
    assert ccstream(site, "replay", "rebuild").returncode == 0
    dumps = [ccstream(d, "replay", "dump").stdout for d in (site, other)]
    assert dumps[0] == dumps[1] and dumps[0].count("\n") > 300
