"""`main.https-cert-file` / `main.https-key-file`: `ccstream serve` answers over HTTPS with that certificate."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.config import MainSettings
from api.serving import ServeError, tls_options
from tests.support.server import CcstreamServer

ROOT = Path(__file__).resolve().parents[2]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


def test_serve_answers_over_https_with_the_configured_certificate(tmp_path: Path) -> None:
    server = CcstreamServer(tmp_path / "site", extra_env={"PYTHONPATH": str(ROOT)})
    server.prepare()
    cert, key = self_signed(tmp_path)
    config = orjson.loads((server.workdir / "config.json").read_bytes())
    config["main"].update({"https-cert-file": str(cert), "https-key-file": str(key)})
    (server.workdir / "config.json").write_bytes(orjson.dumps(config))
    server.tls_ca = cert
    with server:
        server.start()
        answer = httpx.get(f"{server.base_url}/api/jobs/", headers=server.headers, verify=server.verify, timeout=30)
        assert answer.status_code == 200
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served on that port
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5).raise_for_status()


def test_cert_without_key_is_refused() -> None:
    with pytest.raises(ServeError, match=r"main.https-cert-file and main.https-key-file go together"):
        tls_options(MainSettings.model_validate({"https-cert-file": "/etc/cert.pem"}))
    assert tls_options(MainSettings()) == {}


def test_unreadable_certificate_exits_non_zero_naming_the_keys(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(orjson.dumps({"main": {
        "https-cert-file": str(tmp_path / "missing.pem"), "https-key-file": str(tmp_path / "missing.key"),
        "addr": "127.0.0.1:0"}}).decode())
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-m", "api.cli", "serve"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert done.returncode == 1
    assert "ccstream: main.https-cert-file" in done.stderr and "cannot load the certificate and key" in done.stderr
    assert not (tmp_path / "var").exists()
