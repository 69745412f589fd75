"""`ccstream metricstore`: the metric store alone, as a subprocess, with cc-metric-store's API and auth."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.server import ccstream_executable, free_port
from tests.support.specs import find_specs


def test_standalone_metric_store_ingests_and_answers_queries(tmp_path: Path) -> None:
    exe = ccstream_executable()
    subprocess.run([exe, "init"], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    (tmp_path / "var" / "job-archive" / "fritz").mkdir(parents=True)
    shutil.copy(find_specs() / "archive" / "fritz" / "cluster.json", tmp_path / "var/job-archive/fritz/cluster.json")
    subprocess.run([exe, "add-user", "collector:api:pw"], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    token = subprocess.run([exe, "jwt", "collector"], cwd=tmp_path, check=True, capture_output=True, text=True,
                           timeout=120).stdout.strip()
    port = free_port()
    proc = subprocess.Popen([exe, "--log-level", "warning", "metricstore", "--addr", f"127.0.0.1:{port}"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/debug/", headers={"Authorization": f"Bearer {token}"}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "metric store did not start"
            time.sleep(0.2)
        now = int(time.time())
        lines = "\n".join(f"cpu_load,cluster=fritz,hostname=f0101,type=node value={v} {now - 600 + 60 * i}"
                          for i, v in enumerate((1.0, 2.0, 3.0)))
        assert httpx.post(f"{base}/api/write/", content=lines, headers={"Authorization": "Bearer nonsense"}
                          ).status_code == 401
        written = httpx.post(f"{base}/api/write/", content=lines, headers={"Authorization": f"Bearer {token}"})
        assert written.status_code == 200, written.text
        query = {"cluster": "fritz", "from": now - 700, "to": now, "with-stats": True,
                 "queries": [{"metric": "cpu_load", "host": "f0101"}]}
        answer = httpx.request("GET", f"{base}/api/query/", json=query, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        [[result]] = answer.json()["results"]
        assert result["avg"] == 2.0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
