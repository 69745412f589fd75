"""`main.redirect-http-to`: port 80 sends every request to the configured URL with a 301, as cc-backend does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from api.redirect import REDIRECT_PORT, HttpRedirect, RedirectError
from tests.support.server import CcstreamServer

ROOT = Path(__file__).resolve().parents[2]


def test_every_request_is_answered_with_a_permanent_redirect_to_the_target() -> None:
    redirect = HttpRedirect("https://cockpit.example/", host="127.0.0.1", port=0)
    redirect.start()
    try:
        for method, path in (("GET", "/"), ("GET", "/monitoring/jobs/?state=running"), ("POST", "/api/x")):
            answer = httpx.request(method, f"http://127.0.0.1:{redirect.port}{path}", timeout=10)
            assert answer.status_code == 301 and answer.headers["location"] == "https://cockpit.example/"
    finally:
        redirect.stop()


def test_a_target_that_is_not_an_absolute_url_is_refused() -> None:
    with pytest.raises(RedirectError, match=r"main.redirect-http-to '/login': expected an absolute URL"):
        HttpRedirect("/login", host="127.0.0.1", port=0)


def test_a_port_in_use_is_refused_naming_the_key() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RedirectError, match=rf"main.redirect-http-to: cannot listen on port {port}"):
            HttpRedirect("https://x.example/", host="127.0.0.1", port=port)


def test_serve_redirects_port_80_beside_the_api(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        raise AssertionError("port 80 needs root: run this test as root (CI does)")
    server = CcstreamServer(tmp_path / "site", extra_env={"PYTHONPATH": str(ROOT)})
    server.prepare()
    config = orjson.loads((server.workdir / "config.json").read_bytes())
    config["main"]["redirect-http-to"] = "https://cockpit.example/"
    (server.workdir / "config.json").write_bytes(orjson.dumps(config))
    with server:
        server.start()
        answer = httpx.get(f"http://127.0.0.1:{REDIRECT_PORT}/monitoring/", timeout=10)
        assert answer.status_code == 301 and answer.headers["location"] == "https://cockpit.example/"
        assert httpx.get(f"{server.base_url}/api/jobs/", headers=server.headers, timeout=30).status_code == 200
    with pytest.raises(httpx.TransportError):  # closed with the server
        httpx.get(f"http://127.0.0.1:{REDIRECT_PORT}/", timeout=5)


def test_serve_with_a_bad_redirect_target_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"main": {"redirect-http-to": "cockpit.example"}}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "api.cli", "serve"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == ("ccstream: main.redirect-http-to 'cockpit.example': expected an absolute URL "
                                   "like https://host.example/")
    assert not (tmp_path / "var").exists()
