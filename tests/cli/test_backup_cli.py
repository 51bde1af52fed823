"""``allcare backup`` while the server takes photos, ``allcare restore`` into a new database and
data directory, and the restored clinic served again, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import struct
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from allcare.cli import app
from allcare.core.config import Settings
from allcare.store.backup import tables
from allcare.store.db import Database
from allcare.store.models import Image
from tests.conftest import ENCRYPTION_KEY, TEST_JWT_SECRET, Api, empty_postgres_database
from tests.models import tiny_torchscript
from tests.photos import sharp_photo
from tests.s3_server import S3Server
from tests.uploads import camera, upload


@pytest.fixture
def target_url(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty database on the same backend as the source."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored' / 'allcare.db'}"
        return
    with empty_postgres_database(request.getfixturevalue("postgres_server")) as url:
        yield url


def cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, *args: str):
    for name, value in {
        "STORAGE_ROOT": str(settings.storage_root),
        "DATABASE_URL": settings.sqlalchemy_url,
        "ENCRYPT_STORAGE": "true",
        "DATA_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def clinic(make_api: Callable[..., Api], make_settings: Callable[..., Settings], tmp_path: Path):
    settings = make_settings(
        model_path=tiny_torchscript(tmp_path / "tiny.pt"),
        inference_runtime="torch",
        encrypt_storage=True,
        data_encryption_key=ENCRYPTION_KEY,
        upload_rate_per_minute=10_000,
    )
    api = make_api(settings)
    api.add_user("gp1", "gp")
    api.add_user("doc1", "doctor")
    gp, doctor = api.as_user("gp1"), api.as_user("doc1")
    for n in range(4):
        case_id = gp.post("/cases/next-id").json()["case_id"]
        answer = upload(api.client, camera("gp1"), sharp_photo(), case_id=case_id).json()
        paths = [f"gp1/{answer['image_id']}.jpg"]
        assert gp.post("/cases", json={"case_id": case_id, "image_paths": paths}).status_code == 200
        doctor.post(f"/cases/{case_id}/label", json={"correct_label": ["mel", "nv"][n % 2]})
    return api


def elsewhere(settings: Settings, storage_root: Path, database_url: str) -> Settings:
    values = settings.model_dump() | {"storage_root": storage_root, "database_url": database_url}
    return Settings(**values)


def rows_by_table(db: Database) -> dict[str, list[str]]:
    """Each row as canonical JSON (JSON columns hold dicts, which do not hash)."""
    with db.engine.connect() as connection:
        return {
            table.name: [
                json.dumps(list(row), sort_keys=True, default=repr)
                for row in connection.execute(select(table).order_by(*table.primary_key))
            ]
            for table in tables()
        }


def test_backup_while_serving_then_restore_gives_back_the_same_clinic(
    clinic: Api,
    make_api: Callable[..., Api],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    target_url: str,
) -> None:
    source = clinic.container.settings
    archive = tmp_path / "clinic.zip"
    stop = threading.Event()
    uploads: list[int] = []

    def keep_uploading() -> None:  # the server is in use while the backup runs
        while not stop.is_set():
            uploads.append(upload(clinic.client, camera("gp1")).status_code)

    uploader = threading.Thread(target=keep_uploading)
    uploader.start()
    try:
        result = cli(monkeypatch, source, "backup", "--out", str(archive))
    finally:
        stop.set()
        uploader.join()
    assert result.exit_code == 0, result.output
    assert "not in the archive" in result.output
    assert set(uploads) == {200}

    restored_settings = elsewhere(source, tmp_path / "restored", target_url)
    result = cli(monkeypatch, restored_settings, "restore", str(archive))
    assert result.exit_code == 0, result.output

    # Every restored row equals the source's row (the source only grew since the snapshot);
    # the case counter has moved on since.
    restored_db = Database(restored_settings.sqlalchemy_url)
    try:
        restored, now = rows_by_table(restored_db), rows_by_table(clinic.container.db)
    finally:
        restored_db.dispose()
    counted = dict(map(json.loads, restored.pop("counters")))
    counters_now = dict(map(json.loads, now.pop("counters")))
    assert counted.keys() == counters_now.keys()
    assert all(counted[name] <= counters_now[name] for name in counted)
    for table, rows in restored.items():
        assert set(rows) <= set(now[table]), table
    assert len(restored["images"]) >= 4
    assert len(restored["users"]) == 2
    assert len(restored["model_versions"]) == 1
    assert restored["access_events"]

    served = make_api(restored_settings)
    gp = served.as_user("gp1")
    with served.container.db.session() as session:
        images = list(session.scalars(select(Image)))
    for image in images:
        again = served.client.get(f"/images/gp1/{image.id}.jpg")
        original = clinic.client.get(f"/images/gp1/{image.id}.jpg")
        assert again.status_code == 200
        assert again.content == original.content
    listed = {c["case_id"] for c in gp.get("/cases").json()["cases"]}
    assert listed == {
        c["case_id"]
        for c in clinic.as_user("gp1").get("/cases").json()["cases"]
        if int(c["case_id"]) in {image.case_id for image in images}
    }
    next_id = int(gp.post("/cases/next-id").json()["case_id"])
    assert next_id > max(image.case_id for image in images)
    assert served.container.engine.model is not None  # the registered model came back too


def test_restore_refuses_a_database_in_use(
    clinic: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    archive = tmp_path / "clinic.zip"
    source = clinic.container.settings
    assert cli(monkeypatch, source, "backup", "--out", str(archive)).exit_code == 0
    result = cli(monkeypatch, source, "restore", str(archive))
    assert result.exit_code == 1
    assert "not empty" in result.output


def flip_a_photo_byte_in_place(archive: Path, damaged: Path) -> None:
    """Damage the zip file itself: its own CRC no longer matches either."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as good:
        item = next(i for i in good.infolist() if i.filename.startswith("files/blobs/"))
    # The local file header: 30 bytes, then the name and the extra field, then the data.
    header = item.header_offset
    name_length, extra_length = struct.unpack("<HH", data[header + 26 : header + 30])
    data[header + 30 + name_length + extra_length + item.file_size // 2] ^= 1
    damaged.write_bytes(bytes(data))


def change_a_photo_entry(archive: Path, damaged: Path) -> None:
    """A well-formed zip whose photo no longer matches the manifest's sha256."""
    with zipfile.ZipFile(archive) as good, zipfile.ZipFile(damaged, "w") as bad:
        for item in good.infolist():
            data = good.read(item)
            if item.filename.startswith("files/blobs/"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            bad.writestr(item, data)


@pytest.mark.parametrize("damage", [change_a_photo_entry, flip_a_photo_byte_in_place])
def test_a_damaged_archive_is_refused_and_leaves_nothing_behind(
    clinic: Api,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    target_url: str,
    damage: Callable[[Path, Path], None],
) -> None:
    source = clinic.container.settings
    archive, damaged = tmp_path / "clinic.zip", tmp_path / "damaged.zip"
    assert cli(monkeypatch, source, "backup", "--out", str(archive)).exit_code == 0
    damage(archive, damaged)
    restored_settings = elsewhere(source, tmp_path / "restored", target_url)
    result = cli(monkeypatch, restored_settings, "restore", str(damaged))
    assert result.exit_code == 1
    assert "damaged" in result.output
    assert [p for p in (tmp_path / "restored" / "blobs").rglob("*") if p.is_file()] == []
    restored_db = Database(restored_settings.sqlalchemy_url)
    try:
        assert not any(rows_by_table(restored_db).values())
    finally:
        restored_db.dispose()


def test_not_a_backup_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.zip"
    with zipfile.ZipFile(bogus, "w") as archive:
        archive.writestr("hello.txt", "hi")
    result = cli(monkeypatch, settings, "restore", str(bogus))
    assert result.exit_code == 1
    assert "Not an AllCare backup" in result.output


@pytest.mark.s3
def test_a_backup_restores_into_a_bucket_and_backs_up_from_it(
    clinic: Api,
    make_api: Callable[..., Api],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    target_url: str,
    bucket_url: str,
    s3_environment: S3Server,
) -> None:
    """The same archive format on both backends: a local clinic moves into a bucket, and the
    bucket's own backup holds the very same files."""
    source = clinic.container.settings
    archive = tmp_path / "clinic.zip"
    assert cli(monkeypatch, source, "backup", "--out", str(archive)).exit_code == 0
    in_bucket = elsewhere(source, tmp_path / "replica", target_url).model_copy(
        update={"blob_store_url": bucket_url, "s3_endpoint_url": s3_environment.endpoint_url}
    )
    monkeypatch.setenv("BLOB_STORE_URL", bucket_url)
    result = cli(monkeypatch, in_bucket, "restore", str(archive))
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "replica" / "blobs").exists()

    served = make_api(in_bucket)
    with served.container.db.session() as session:
        images = list(session.scalars(select(Image)))
    assert len(images) >= 4
    for image in images:
        again = served.client.get(f"/images/gp1/{image.id}.jpg")
        assert again.content == clinic.client.get(f"/images/gp1/{image.id}.jpg").content
    assert served.container.engine.model is not None  # fetched from the bucket

    again = tmp_path / "from-bucket.zip"
    assert cli(monkeypatch, in_bucket, "backup", "--out", str(again)).exit_code == 0
    with zipfile.ZipFile(archive) as first, zipfile.ZipFile(again) as second:
        assert (
            json.loads(first.read("manifest.json"))["files"]
            == json.loads(second.read("manifest.json"))["files"]
        )


@pytest.mark.parametrize(
    "entry", ["files/blobs/../../escaped.jpg", "files/other/x.jpg", "files/blobs//x.jpg"]
)
def test_an_archive_naming_a_file_outside_its_folders_is_refused(
    clinic: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, target_url: str, entry: str
) -> None:
    source = clinic.container.settings
    archive, hostile = tmp_path / "clinic.zip", tmp_path / "hostile.zip"
    assert cli(monkeypatch, source, "backup", "--out", str(archive)).exit_code == 0
    with zipfile.ZipFile(archive) as good, zipfile.ZipFile(hostile, "w") as bad:
        manifest = json.loads(good.read("manifest.json"))
        first = next(name for name in manifest["files"] if name.startswith("files/blobs/"))
        manifest["files"] = {entry: manifest["files"][first]}
        for item in good.infolist():
            if item.filename == "manifest.json":
                bad.writestr("manifest.json", json.dumps(manifest))
            elif item.filename == first:
                bad.writestr(entry, good.read(item))
            else:
                bad.writestr(item, good.read(item))
    restored_settings = elsewhere(source, tmp_path / "restored", target_url)
    result = cli(monkeypatch, restored_settings, "restore", str(hostile))
    assert result.exit_code == 1
    assert "outside its folders" in result.output or "leaves its folder" in result.output
    assert not (tmp_path / "escaped.jpg").exists()
    assert not (tmp_path / "restored" / "escaped.jpg").exists()
