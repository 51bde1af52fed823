"""``BLOB_STORE_URL`` to a backend; one instance per process and location (boto3 clients are
thread-safe and costly to build)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from allcare.core.config import ConfigError, Settings
from allcare.store.objects._base import ObjectStore

_opened: dict[tuple[str, str | None, str], ObjectStore] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class BlobStoreUrl:
    bucket: str
    prefix: str


def parse_blob_store_url(url: str) -> BlobStoreUrl:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"BLOB_STORE_URL={url!r} is not an object storage URL; use s3://bucket or "
            "s3://bucket/prefix (unset it for the local folder under STORAGE_ROOT)"
        )
    if "@" in parts.netloc or ":" in parts.netloc:
        raise ConfigError(
            "BLOB_STORE_URL names only the bucket: give the server in S3_ENDPOINT_URL and the "
            "credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS config files"
        )
    return BlobStoreUrl(bucket=parts.netloc, prefix=parts.path.strip("/"))


def open_object_store(settings: Settings) -> ObjectStore:
    """The local folder ``STORAGE_ROOT`` unless ``BLOB_STORE_URL`` names a bucket."""
    key = (settings.blob_store_url or "", settings.s3_endpoint_url, str(settings.storage_root))
    with _lock:
        store = _opened.get(key)
        if store is None:
            store = _open(settings)
            _opened[key] = store
        return store


def _open(settings: Settings) -> ObjectStore:
    if not settings.blob_store_url:
        from allcare.store.objects._local import LocalObjects

        return LocalObjects(Path(settings.storage_root))
    where = parse_blob_store_url(settings.blob_store_url)
    from allcare.store.objects._s3 import S3Objects

    return S3Objects(where.bucket, where.prefix, settings.s3_endpoint_url)
