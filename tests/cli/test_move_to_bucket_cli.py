"""``allcare move-to-bucket``: a clinic's local photos and model files copied into a bucket,
killed part-way and resumed, every object checked; then the clinic served from the bucket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from allcare.core.config import Settings
from tests.conftest import ENCRYPTION_KEY, TEST_JWT_SECRET, Api
from tests.models import tiny_torchscript
from tests.photos import sharp_photo
from tests.s3_server import S3Server, bucket_objects, raw_client
from tests.uploads import camera, upload

pytestmark = pytest.mark.s3

PHOTOS = 30


def _command(settings: Settings, bucket_url: str, s3: S3Server) -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        **s3.environment(),
        "STORAGE_ROOT": str(settings.storage_root),
        "DATABASE_URL": settings.sqlalchemy_url,
        "BLOB_STORE_URL": bucket_url,
        "ENCRYPT_STORAGE": "true",
        "DATA_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
    }
    return [sys.executable, "-m", "allcare", "move-to-bucket"], env


def test_a_killed_move_resumes_and_the_clinic_then_serves_from_the_bucket(
    make_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    bucket_url: str,
    s3_environment: S3Server,
    tmp_path: Path,
) -> None:
    settings = make_settings(
        model_path=tiny_torchscript(tmp_path / "tiny.pt"),
        inference_runtime="torch",
        encrypt_storage=True,
        data_encryption_key=ENCRYPTION_KEY,
        upload_rate_per_minute=10_000,
    )
    clinic = make_api(settings)
    clinic.add_user("gp1", "gp")
    photos = {}
    for n in range(PHOTOS):
        data = sharp_photo(seed=n)
        photos[upload(clinic.client, camera("gp1"), data).json()["image_id"]] = data
    local = {
        p.relative_to(settings.storage_root).as_posix(): p.read_bytes()
        for folder in ("blobs", "models")
        for p in (settings.storage_root / folder).rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "worker.log"
    }
    assert len(local) == PHOTOS + 1

    command, env = _command(settings, bucket_url, s3_environment)
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not bucket_objects(s3_environment, bucket_url) and first.poll() is None:
        assert time.monotonic() < deadline, "nothing was copied"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    copied_before = len(bucket_objects(s3_environment, bucket_url))
    assert copied_before >= 1

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{PHOTOS + 1} files in" in again.stdout
    assert "sha256-checked" in again.stdout
    assert f"{copied_before} already there" in again.stdout  # verified, not copied again
    assert bucket_objects(s3_environment, bucket_url) == local  # every object, byte for byte

    served = make_api(
        settings.model_copy(
            update={"blob_store_url": bucket_url, "storage_root": tmp_path / "fresh"}
        )
    )
    for image_id, data in photos.items():
        assert served.client.get(f"/images/gp1/{image_id}.jpg").content == data
    assert served.container.engine.model is not None


def test_an_object_that_differs_in_the_bucket_stops_the_move_with_its_name(
    make_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    bucket_url: str,
    s3_environment: S3Server,
    tmp_path: Path,
) -> None:
    settings = make_settings(
        model_path=tiny_torchscript(tmp_path / "tiny.pt"),
        inference_runtime="torch",
        encrypt_storage=True,
        data_encryption_key=ENCRYPTION_KEY,
    )
    clinic = make_api(settings)
    clinic.add_user("gp1", "gp")
    image_id = upload(clinic.client, camera("gp1"), sharp_photo()).json()["image_id"]
    [key] = [
        p.relative_to(settings.storage_root).as_posix()
        for p in (settings.storage_root / "blobs").rglob("*")
        if p.is_file() and image_id in p.name
    ]
    prefix = bucket_url.split("/", 3)[3]
    raw_client(s3_environment).put_object(
        Bucket=s3_environment.bucket, Key=f"{prefix}/{key}", Body=b"something else"
    )
    command, env = _command(settings, bucket_url, s3_environment)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert key in result.stderr
    assert "differs from the local file" in result.stderr
    assert image_id in key


def test_without_a_bucket_setting_it_says_what_to_set(settings: Settings) -> None:
    env = {
        **os.environ,
        "STORAGE_ROOT": str(settings.storage_root),
        "DATABASE_URL": settings.sqlalchemy_url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "allcare", "move-to-bucket"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "BLOB_STORE_URL=s3://" in result.stderr
