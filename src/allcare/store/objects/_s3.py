"""S3-compatible object storage through boto3 (AWS S3, SeaweedFS, MinIO, Ceph RGW, ...).

Writes are single ``PutObject`` calls with ``If-None-Match: *``: S3 makes an object visible only
once its upload is complete, and the condition makes a key create-only across every replica.
A retried PUT whose first attempt did land gets 412; the object's ETag (the MD5 of a single-part
upload) tells that retry apart from a real collision. Credentials come from boto3's standard
chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the config files, instance
roles), never from our settings or a command line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from allcare.store.objects._base import (
    ObjectExists,
    ObjectMissing,
    ObjectStore,
    ObjectStoreUnavailable,
    Readable,
    check_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
TAKEN = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
CHUNK = 1 << 20


class S3Objects(ObjectStore):
    remote = True

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self._client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(
                # Path-style addressing works with every S3-compatible server; AWS accepts it.
                s3={"addressing_style": "path"} if endpoint_url else {},
                retries={"max_attempts": 4, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=32,  # upload threads share one client
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def put_new(self, key: str, data: bytes) -> None:
        name = self._name(key)
        try:
            self._call(
                self._client.put_object, Bucket=self.bucket, Key=name, Body=data, IfNoneMatch="*"
            )
        except ObjectExists:
            if self._etag(name) != hashlib.md5(data, usedforsecurity=False).hexdigest():
                raise

    def put_file_new(self, key: str, source: Path) -> None:
        name = self._name(key)
        digest = hashlib.md5(usedforsecurity=False)
        with source.open("rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
        try:
            with source.open("rb") as handle:
                # One PUT (up to 5 GB): a multipart upload could not be create-only everywhere.
                self._call(
                    self._client.put_object,
                    Bucket=self.bucket,
                    Key=name,
                    Body=handle,
                    IfNoneMatch="*",
                )
        except ObjectExists:
            if self._etag(name) != digest.hexdigest():
                raise

    def get(self, key: str) -> bytes:
        response = self._call(self._client.get_object, Bucket=self.bucket, Key=self._name(key))
        body: bytes = response["Body"].read()
        return body

    @contextmanager
    def open(self, key: str) -> Iterator[Readable]:
        response = self._call(self._client.get_object, Bucket=self.bucket, Key=self._name(key))
        body = response["Body"]
        try:
            yield body
        finally:
            body.close()

    def get_to_file(self, key: str, target: Path) -> None:
        response = self._call(self._client.get_object, Bucket=self.bucket, Key=self._name(key))
        with target.open("wb") as handle:
            for chunk in response["Body"].iter_chunks(CHUNK):
                handle.write(chunk)

    def delete(self, key: str) -> None:
        self._call(self._client.delete_object, Bucket=self.bucket, Key=self._name(key))

    def keys(self, prefix: str = "") -> Iterator[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start + prefix
        )
        try:
            for page in pages:
                for entry in page.get("Contents", []):
                    yield entry["Key"][len(start) :]
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc) from exc

    def size(self, key: str) -> int:
        response = self._call(self._client.head_object, Bucket=self.bucket, Key=self._name(key))
        return int(response["ContentLength"])

    def check(self) -> None:
        self._call(self._client.head_bucket, Bucket=self.bucket)

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _etag(self, name: str) -> str | None:
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=name)
        except ClientError:
            return None
        return str(response.get("ETag", "")).strip('"') or None

    def _call(self, method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in MISSING and "Key" in kwargs:
                raise ObjectMissing(f"no object {kwargs['Key']!r} in {self.describe()}") from None
            if code in TAKEN:
                raise ObjectExists(
                    f"object {kwargs.get('Key')!r} exists in {self.describe()}"
                ) from None
            raise self._unavailable(exc) from exc
        except NoCredentialsError as exc:
            raise ObjectStoreUnavailable(
                f"no credentials for {self.describe()}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials"
            ) from exc
        except BotoCoreError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> ObjectStoreUnavailable:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            hint = {
                "NoSuchBucket": "create the bucket first",
                "404": "create the bucket first",
                "AccessDenied": "the credentials may not use this bucket",
                "403": "the credentials are wrong or may not use this bucket",
                "InvalidAccessKeyId": "AWS_ACCESS_KEY_ID is not known to the server",
                "SignatureDoesNotMatch": "AWS_SECRET_ACCESS_KEY is wrong",
            }.get(code, str(error.get("Message", "")) or "see the server's log")
            return ObjectStoreUnavailable(f"{self.describe()}: {code or 'error'} ({hint})")
        return ObjectStoreUnavailable(f"{self.describe()} cannot be reached: {exc}")
