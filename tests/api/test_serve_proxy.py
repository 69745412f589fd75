"""`ccstream serve` and forwarded headers: the IP allow-list sees the socket peer unless a proxy is trusted."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from tests.support.server import CcstreamServer


def test_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    server = CcstreamServer(tmp_path / "site").prepare()
    config = server.workdir / "config.json"
    settings = orjson.loads(config.read_bytes())
    settings["main"]["api-allowed-ips"] = ["10.9.8.7"]
    config.write_bytes(orjson.dumps(settings))
    forged = {**server.headers, "X-Forwarded-For": "10.9.8.7"}
    with server:
        server.start()
        refused = httpx.get(f"{server.base_url}/api/jobs/", headers=forged)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "IP address 127.0.0.1 is not allowed to use the API"
        server.stop()
        server.serve_args = ("--forwarded-allow-ips", "127.0.0.1")
        server.start()
        through_proxy = httpx.get(f"{server.base_url}/api/jobs/", headers=forged)
        assert through_proxy.status_code == 200, through_proxy.text
        direct = httpx.get(f"{server.base_url}/api/jobs/", headers=server.headers)
        assert direct.status_code == 403
