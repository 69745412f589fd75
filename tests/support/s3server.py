"""A real S3 endpoint on loopback (moto's server on a free port), as a context manager and pytest fixtures."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

ACCESS_KEY = "ccstream-test"
SECRET_KEY = "ccstream-test-secret"
REGION = "eu-central-1"


@dataclass(frozen=True)
class S3Server:
    """A running S3 server: its endpoint and the credentials it accepts (moto accepts any)."""

    endpoint: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )

    def create_bucket(self, name: str | None = None) -> str:
        """A fresh, empty bucket (a unique name unless given)."""
        name = name or f"ccstream-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        return name

    def settings(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """An `archive` config section pointing at this server."""
        return {
            "kind": "s3", "endpoint": self.endpoint, "bucket": bucket, "region": self.region,
            "access-key": self.access_key, "secret-key": self.secret_key, "use-path-style": True, **extra,
        }


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start moto's S3 server on 127.0.0.1 and a port the OS picks; stop it on exit."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """One S3 server for the test session; tests isolate themselves with their own buckets."""
    with s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3: S3Server) -> str:
    """A fresh bucket on the session's S3 server."""
    return s3.create_bucket()


@pytest.fixture
def s3_bucket_factory(s3: S3Server) -> Callable[[], str]:
    """Make as many fresh buckets as a test needs."""
    return s3.create_bucket
