"""Both object-store backends keep one contract: create-only, whole objects, clear errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from allcare.core.config import ConfigError, Settings
from allcare.store.objects import (
    ObjectExists,
    ObjectMissing,
    ObjectStore,
    ObjectStoreUnavailable,
    open_object_store,
    parse_blob_store_url,
)
from allcare.store.objects._local import LocalObjects
from allcare.store.objects._s3 import S3Objects
from tests.s3_server import S3Server, raw_client


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalObjects(tmp_path / "root")
        return
    server: S3Server = request.getfixturevalue("s3_environment")
    yield S3Objects(server.bucket, f"t{uuid.uuid4().hex[:12]}", server.endpoint_url)


def test_an_object_is_written_once_and_read_back(objects: ObjectStore, tmp_path: Path) -> None:
    objects.put_new("blobs/images/ab/one.jpg", b"photo bytes")
    assert objects.get("blobs/images/ab/one.jpg") == b"photo bytes"
    assert objects.size("blobs/images/ab/one.jpg") == len(b"photo bytes")
    objects.put_new("blobs/images/ab/one.jpg", b"photo bytes")  # a retried write: no error
    with pytest.raises(ObjectExists):
        objects.put_new("blobs/images/ab/one.jpg", b"other bytes")
    assert objects.get("blobs/images/ab/one.jpg") == b"photo bytes"


def test_files_go_in_and_out_whole(objects: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "model.pt"
    source.write_bytes(bytes(range(256)) * 5000)
    objects.put_file_new("models/v1/model.pt", source)
    target = tmp_path / "fetched"
    objects.get_to_file("models/v1/model.pt", target)
    assert target.read_bytes() == source.read_bytes()
    other = tmp_path / "other.pt"
    other.write_bytes(b"different")
    with pytest.raises(ObjectExists):
        objects.put_file_new("models/v1/model.pt", other)


def test_listing_deleting_and_missing_keys(objects: ObjectStore) -> None:
    for name in ("a", "b", "c"):
        objects.put_new(f"blobs/x/{name}", name.encode())
    objects.put_new("models/v1/model.onnx", b"m")
    assert sorted(objects.keys("blobs/")) == ["blobs/x/a", "blobs/x/b", "blobs/x/c"]
    objects.delete("blobs/x/b")
    objects.delete("blobs/x/b")  # already gone: not an error
    assert sorted(objects.keys("blobs/")) == ["blobs/x/a", "blobs/x/c"]
    with pytest.raises(ObjectMissing, match="blobs/x/b"):
        objects.get("blobs/x/b")
    with pytest.raises(ObjectMissing):
        objects.size("blobs/x/b")
    objects.check()


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../../b", "a//b", "a/./b"])
def test_keys_that_could_escape_are_refused(objects: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        objects.put_new(key, b"x")


def test_a_half_written_local_file_is_not_an_object(tmp_path: Path) -> None:
    objects = LocalObjects(tmp_path)
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / ".abc.partial").write_bytes(b"half")
    objects.put_new("blobs/whole", b"whole")
    assert list(objects.keys("blobs/")) == ["blobs/whole"]


@pytest.mark.s3
def test_wrong_credentials_and_missing_buckets_say_what_to_do(
    s3_environment: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ObjectStoreUnavailable, match="create the bucket"):
        S3Objects("no-such-bucket-here", "", s3_environment.endpoint_url).check()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    wrong = S3Objects(s3_environment.bucket, "p", s3_environment.endpoint_url)
    with pytest.raises(ObjectStoreUnavailable) as refused:
        wrong.check()
    assert "not-the-secret" not in str(refused.value)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ObjectStoreUnavailable, match="AWS_ACCESS_KEY_ID"):
        S3Objects(s3_environment.bucket, "p", s3_environment.endpoint_url).check()


@pytest.mark.s3
def test_objects_land_under_the_prefix_in_the_bucket(s3_environment: S3Server) -> None:
    objects = S3Objects(s3_environment.bucket, "clinic-a/", s3_environment.endpoint_url)
    objects.put_new("blobs/k", b"v")
    listed = raw_client(s3_environment).list_objects_v2(
        Bucket=s3_environment.bucket, Prefix="clinic-a/"
    )
    assert [entry["Key"] for entry in listed["Contents"]] == ["clinic-a/blobs/k"]
    assert list(objects.keys()) == ["blobs/k"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://bucket", "not an object storage URL"),
        ("s3://", "not an object storage URL"),
        ("s3://key:secret@bucket", "names only the bucket"),
        ("s3://bucket:9000/p", "names only the bucket"),
    ],
)
def test_blob_store_urls_are_checked(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_blob_store_url(url)


def test_the_url_picks_the_backend(tmp_path: Path) -> None:
    assert parse_blob_store_url("s3://bucket/a/b/").prefix == "a/b"
    local = open_object_store(Settings(storage_root=tmp_path))  # type: ignore[call-arg]
    assert isinstance(local, LocalObjects)
    assert open_object_store(Settings(storage_root=tmp_path)) is local  # type: ignore[call-arg]
    remote = open_object_store(
        Settings(storage_root=tmp_path, blob_store_url="s3://b/p", s3_endpoint_url="http://h:1")  # type: ignore[call-arg]
    )
    assert isinstance(remote, S3Objects)
    assert remote.describe() == "s3://b/p at http://h:1"
