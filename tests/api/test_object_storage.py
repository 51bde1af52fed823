"""Photos and model files in a real S3-compatible bucket (SeaweedFS), on SQLite and PostgreSQL:
sealed before upload, nothing kept on local disk but caches, interrupted uploads cleaned up by
age where other replicas may be writing."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update

from allcare.container import Container
from allcare.core.clock import now_utc
from allcare.core.config import ConfigError, Settings
from allcare.store.models import BlobIntent, ModelVersion
from allcare.store.objects._s3 import S3Objects
from tests.conftest import ENCRYPTION_KEY, Api
from tests.models import tiny_torchscript
from tests.photos import sharp_photo
from tests.s3_server import S3Server, bucket_objects
from tests.uploads import camera, upload

pytestmark = pytest.mark.s3


def _bucket_keys(server: S3Server, url: str) -> list[str]:
    return sorted(bucket_objects(server, url))


def test_a_camera_photo_is_sealed_in_the_bucket_and_served_back(
    make_clinic: Callable[..., Api], bucket_url: str, s3_environment: S3Server
) -> None:
    clinic = make_clinic(
        blob_store_url=bucket_url, encrypt_storage=True, data_encryption_key=ENCRYPTION_KEY
    )
    photo = sharp_photo()
    response = upload(clinic.client, camera("gp1"), photo)
    assert response.status_code == 200, response.text
    image_id = response.json()["image_id"]

    photos = [key for key in _bucket_keys(s3_environment, bucket_url) if key.startswith("blobs/")]
    assert len(photos) == 1
    assert photos[0].endswith(".enc")
    sealed = bucket_objects(s3_environment, bucket_url)[photos[0]]
    assert photo[:64] not in sealed
    assert photo[-64:] not in sealed
    local = clinic.container.settings.storage_root / "blobs"
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))

    served = clinic.client.get(f"/images/gp1/{image_id}.jpg")
    assert served.status_code == 200
    assert served.content == photo
    with clinic.container.db.session() as session:
        assert session.scalar(select(func.count()).select_from(BlobIntent)) == 0


def test_model_files_go_to_the_bucket_and_a_new_machine_fetches_and_checks_them(
    make_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    bucket_url: str,
    s3_environment: S3Server,
    tmp_path: Path,
) -> None:
    model = tiny_torchscript(tmp_path / "tiny.pt")
    first = make_api(
        make_settings(model_path=model, inference_runtime="torch", blob_store_url=bucket_url)
    )
    version = first.client.get("/health").json()["model"]["version"]
    key = f"models/{version}/model.pt"
    assert key in _bucket_keys(s3_environment, bucket_url)
    assert bucket_objects(s3_environment, bucket_url)[key] == model.read_bytes()

    # Another machine: its own (empty) STORAGE_ROOT, the same database and bucket.
    elsewhere = make_settings(
        storage_root=tmp_path / "replica", inference_runtime="torch", blob_store_url=bucket_url
    )
    second = make_api(elsewhere)
    assert second.client.get("/health").json()["model"] == {"loaded": True, "version": version}
    fetched = elsewhere.models_dir / version / "model.pt"
    assert fetched.read_bytes() == model.read_bytes()

    # A file that changed in the bucket is refused, not served.
    with first.container.db.session() as session:
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.id == version)
            .values(sha256=hashlib.sha256(b"something else").hexdigest())
        )
        session.commit()
    third_root = tmp_path / "third"
    with pytest.raises(ConfigError, match="does not match the sha256"):
        Container.start(
            make_settings(
                storage_root=third_root, inference_runtime="torch", blob_store_url=bucket_url
            )
        )
    assert not (third_root / "models" / version / "model.pt").exists()


def test_abandoned_uploads_are_removed_by_age_where_replicas_write(
    make_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    bucket_url: str,
    s3_environment: S3Server,
) -> None:
    """With PostgreSQL another replica may be mid-upload: only intents older than the lease go.
    With SQLite this process is the only writer, so start-up removes every intent."""
    settings = make_settings(blob_store_url=bucket_url)
    api = make_api(settings)
    objects = api.container.blobs.objects
    for key in ("images/aa/old.jpg", "images/bb/fresh.jpg"):
        objects.put_new(f"blobs/{key}", b"half an upload")
    with api.container.db.session() as session:
        session.execute(insert(BlobIntent).values(key="images/bb/fresh.jpg", created_at=now_utc()))
        session.execute(
            insert(BlobIntent).values(
                key="images/aa/old.jpg",
                created_at=now_utc() - 2 * _lease(settings),
            )
        )
        session.commit()

    restarted = make_api(settings)
    left = _bucket_keys(s3_environment, bucket_url)
    with restarted.container.db.session() as session:
        intents = sorted(session.scalars(select(BlobIntent.key)))
    assert "blobs/images/aa/old.jpg" not in left
    if restarted.container.db.is_sqlite:
        assert intents == []
        assert "blobs/images/bb/fresh.jpg" not in left
    else:
        assert intents == ["images/bb/fresh.jpg"]
        assert "blobs/images/bb/fresh.jpg" in left


def _lease(settings: Settings):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(seconds=settings.blob_intent_lease_s)


def test_a_bucket_that_is_missing_or_refuses_stops_start_up_with_the_reason(
    make_settings: Callable[..., Settings],
    s3_environment: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="create the bucket first"):
        Container.start(make_settings(blob_store_url="s3://no-such-bucket/p"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    with pytest.raises(ConfigError) as refused:
        Container.start(make_settings(blob_store_url=f"s3://{s3_environment.bucket}/p"))
    assert "BLOB_STORE_URL" in str(refused.value)
    assert "wrong-secret-value" not in str(refused.value)


def test_readiness_reports_the_bucket(
    make_clinic: Callable[..., Api], bucket_url: str, s3_environment: S3Server
) -> None:
    clinic = make_clinic(blob_store_url=bucket_url)
    ready = clinic.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["objects"] == {"ok": True, "backend": "s3"}
    clinic.container.blobs.objects = S3Objects(s3_environment.bucket, "p", "http://127.0.0.1:1")
    down = clinic.client.get("/health/ready")
    assert down.status_code == 503
    assert down.json()["status"] == "not_ready"
    assert down.json()["objects"] == {"ok": False, "backend": "s3"}
    assert clinic.client.get("/health/live").status_code == 200


def test_a_running_replica_removes_uploads_abandoned_by_another(
    make_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    bucket_url: str,
    s3_environment: S3Server,
) -> None:
    """A replica that died mid-upload leaves an intent; the survivors remove its object once
    the lease has passed, without a restart."""
    settings = make_settings(blob_store_url=bucket_url, registry_poll_seconds=0.5)
    api = make_api(settings)
    if api.container.db.is_sqlite:
        pytest.skip("SQLite has one writer process: its start-up removes every intent")
    api.container.blobs.objects.put_new("blobs/images/cc/dead.jpg", b"half")
    with api.container.db.session() as session:
        session.execute(
            insert(BlobIntent).values(
                key="images/cc/dead.jpg", created_at=now_utc() - 2 * _lease(settings)
            )
        )
        session.commit()
    deadline = time.monotonic() + 20
    while "blobs/images/cc/dead.jpg" in _bucket_keys(s3_environment, bucket_url):
        assert time.monotonic() < deadline, "the abandoned upload was not removed"
        time.sleep(0.2)
    with api.container.db.session() as session:
        assert session.scalar(select(func.count()).select_from(BlobIntent)) == 0
