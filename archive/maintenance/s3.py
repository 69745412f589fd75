"""Retention targets in S3: Parquet files and the copy marker as objects in a bucket, via boto3."""

from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from archive.backends.protocol import ArchiveError
from archive.maintenance.policy import RetentionPolicy
from archive.maintenance.targets import checked_parts

_MISSING = {"NoSuchKey", "404", "NotFound"}


class S3Location:
    """A bucket; a PUT replaces an object whole, so no temp objects are needed."""

    def __init__(self, policy: RetentionPolicy) -> None:
        self.bucket = policy.target_bucket
        self._client = boto3.client(
            "s3",
            endpoint_url=policy.target_endpoint or None,
            region_name=policy.target_region or "us-east-1",
            aws_access_key_id=policy.target_access_key or None,
            aws_secret_access_key=policy.target_secret_key or None,
            config=Config(s3={"addressing_style": "path" if policy.target_use_path_style else "auto"},
                          retries={"max_attempts": 5, "mode": "standard"}),
        )

    def __repr__(self) -> str:
        return f"S3Location('s3://{self.bucket}')"

    def _fail(self, name: str, exc: Exception) -> ArchiveError:
        return ArchiveError(f"s3://{self.bucket}/{name}: {exc}")

    def read(self, name: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key="/".join(checked_parts(name)))
            return bytes(response["Body"].read())
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return None
            raise self._fail(name, exc) from None
        except BotoCoreError as exc:
            raise self._fail(name, exc) from None

    def write(self, name: str, data: bytes) -> None:
        content = "application/vnd.apache.parquet" if name.endswith(".parquet") else "application/octet-stream"
        try:
            self._client.put_object(Bucket=self.bucket, Key="/".join(checked_parts(name)), Body=data,
                                    ContentType=content)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(name, exc) from None

    def exists(self, name: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key="/".join(checked_parts(name)))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING:
                return False
            raise self._fail(name, exc) from None
        except BotoCoreError as exc:
            raise self._fail(name, exc) from None
        return True

    def close(self) -> None:
        self._client.close()
