"""Ingest throughput of the metric store on one core: over HTTP (uvicorn) and over NATS.

    .venv/bin/python bench/metricstore_ingest.py [--runs 5] [--samples 2000000]

The server process is pinned to core 0, the load generator to core 1. Persistence (WAL + snapshots) is on,
and every HTTP request carries an Ed25519 JWT that the server verifies, as in production."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from fastapi import HTTPException, Request  # noqa: E402  (module level: FastAPI resolves the hints)
from metricstore_common import batches, median, metrics_config, pin  # noqa: E402


def serve(port: int, directory: str, public_pem: bytes, write_mode: str = "buffered") -> None:
    """Child: the metric store app on one core."""
    import jwt
    import uvicorn
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from api.metricstore_routes import create_metricstore_app
    from metricstore.settings import MetricStoreSettings
    from metricstore.store import MetricStore

    pin(0)
    key = load_pem_public_key(public_pem)

    def auth(request: Request) -> None:
        token = request.headers.get("authorization", "")[7:]
        try:
            jwt.decode(token, key, algorithms=["EdDSA"])  # type: ignore[arg-type]
        except jwt.PyJWTError as exc:
            raise HTTPException(401, str(exc)) from None

    settings = MetricStoreSettings.model_validate({"metrics": metrics_config(), "write-mode": write_mode,
                                                   "checkpoints": {"directory": directory}})
    app = create_metricstore_app(MetricStore(settings, []), auth)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _token() -> tuple[str, bytes]:
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return jwt.encode({"sub": "bench", "roles": ["api"], "exp": int(time.time()) + 86400}, private,
                      algorithm="EdDSA"), pem


def _post_all(port: int, token: str, bodies: list[bytes], connections: int = 2) -> None:
    """Send bodies over `connections` keep-alive connections (so the server never waits for the client)."""

    def worker(part: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}
        for body in part:
            conn.request("POST", "/api/write/", body=body, headers=headers)
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {answer[:300]!r}")
        conn.close()

    threads = [threading.Thread(target=worker, args=(bodies[i::connections],)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def bench_http(samples: int, runs: int, batch_lines: int, connections: int = 2,
               write_mode: str = "buffered") -> float:
    """Median samples/s of `runs` runs of `samples` samples over `connections` concurrent writers."""
    from tests.support.natsserver import free_port

    token, pem = _token()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        child = subprocess.Popen([sys.executable, __file__, "--serve", str(port), tmp, write_mode],
                                 stdin=subprocess.PIPE)
        assert child.stdin is not None
        child.stdin.write(pem)
        child.stdin.close()
        try:
            _wait_port(port)
            pin(1)
            nodes = max(1, samples // 380)
            base = int(time.time()) - 30000
            rates = []
            for run in range(runs + 1):  # run 0 warms up: it creates every series
                bodies = list(batches(nodes, base + 60 * run, batch_lines))
                began = time.perf_counter()
                _post_all(port, token, bodies, connections)
                elapsed = time.perf_counter() - began
                if run:
                    rates.append(nodes * 380 / elapsed)
            return median(rates)
        finally:
            child.terminate()
            child.wait()


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/docs")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("server did not start")


async def _nats_run(url: str, samples: int, runs: int, batch_lines: int) -> float:
    import nats

    from metricstore.nats import NatsMetricSubscriber
    from metricstore.settings import MetricStoreSettings, NatsConnection, NatsSubscription
    from metricstore.store import MetricStore

    settings = MetricStoreSettings.model_validate({"metrics": metrics_config()})
    store = MetricStore(settings, [])
    sub = NatsMetricSubscriber(store, [NatsSubscription(subscribe_to="metrics", cluster_tag="bench")],
                               NatsConnection(address=url))
    await sub.start()
    while not sub.counters["connected"]:
        await asyncio.sleep(0.01)
    nodes = max(1, samples // 380)
    base = int(time.time()) - 30000
    rates = []
    for run in range(runs + 1):
        bodies = list(batches(nodes, base + 60 * run, batch_lines))
        target = store.stats()["samples_accepted"] + nodes * 380
        publisher = subprocess.Popen([sys.executable, __file__, "--publish", url],
                                     stdin=subprocess.PIPE)
        assert publisher.stdin is not None
        payload = b"".join(len(b).to_bytes(4, "little") + b for b in bodies)
        began = time.perf_counter()
        publisher.stdin.write(payload)
        publisher.stdin.close()
        while store.stats()["samples_accepted"] < target:
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - began
        publisher.wait()
        if run:
            rates.append(nodes * 380 / elapsed)
    await sub.stop()
    del nats
    return median(rates)


def publish(url: str) -> None:
    """Child: publish length-prefixed bodies from stdin, one message each, from core 1."""
    import nats

    pin(1)
    data = sys.stdin.buffer.read()

    async def run() -> None:
        nc = await nats.connect(url)
        pos = 0
        while pos < len(data):
            n = int.from_bytes(data[pos : pos + 4], "little")
            await nc.publish("metrics", data[pos + 4 : pos + 4 + n])
            pos += 4 + n
        await nc.flush()
        await nc.close()

    asyncio.run(run())


def bench_nats(samples: int, runs: int, batch_lines: int) -> float:
    from tests.support.natsserver import nats_server

    with nats_server(jetstream=False) as server:
        pin(0)
        return asyncio.run(_nats_run(server.url, samples, runs, batch_lines))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.stdin.buffer.read(), *sys.argv[4:5])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--publish":
        publish(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1_520_000, help="samples per run (380 per node)")
    args = parser.parse_args()
    results = {"cpus": os.cpu_count()}
    for lines in (1_000, 10_000):
        results[f"http_samples_per_s_batch_{lines}"] = round(bench_http(args.samples, args.runs, lines))
        print(json.dumps(results), flush=True)
    results["nats_samples_per_s_msg_1000_lines"] = round(bench_nats(args.samples, args.runs, 1_000))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
