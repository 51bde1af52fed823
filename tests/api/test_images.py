import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, func, select

from allcare.core.config import Settings
from allcare.store.models import AccessEvent, BlobIntent, Case, CaseDecision, Image
from tests.conftest import ENCRYPTION_KEY, TEST_JWT_SECRET, Api
from tests.photos import jpeg_bytes, store_photo
from tests.uploads import let_intent_leases_pass


def test_image_url_serves_the_stored_bytes_without_credentials(api: Api) -> None:
    api.add_user("gp1", "gp")
    case_id = int(api.as_user("gp1").post("/cases/next-id").json()["case_id"])
    data = jpeg_bytes()
    image = store_photo(api.container, "gp1", case_id, data)
    response = api.client.get(f"/images/gp1/{image.id}.jpg")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_stored_image_is_linked_to_its_case(api: Api) -> None:
    api.add_user("gp1", "gp")
    gp = api.as_user("gp1")
    case_id = gp.post("/cases/next-id").json()["case_id"]
    first = store_photo(api.container, "gp1", int(case_id))
    second = store_photo(api.container, "gp1", int(case_id))
    paths = [f"gp1/{second.id}.jpg", f"gp1/{first.id}.jpg"]
    gp.post("/cases", json={"case_id": case_id, "image_paths": paths})
    [record] = gp.get("/cases").json()["cases"]
    assert record["image_paths"] == paths  # the client's order, not sorted (D13)
    assert sorted(record["image_ids"]) == sorted([first.id, second.id])
    assert gp.post("/cases/release-id", json={"case_id": case_id}).json()["reason"] == "case_in_use"


def test_photo_without_case_allocates_one(api: Api) -> None:
    api.add_user("gp1", "gp")
    image = store_photo(api.container, "gp1", None)
    assert image.case_id is not None
    assert image.case_id >= 10000


def test_image_urls_serve_nothing_else(api: Api) -> None:
    api.add_user("gp1", "gp")
    api.add_user("gp2", "gp")
    image = store_photo(api.container, "gp1", None)
    for path in [
        f"/images/gp2/{image.id}.jpg",  # right id, wrong owner
        f"/images/gp1/{image.id}.png",
        f"/images/gp1/{image.id}",
        f"/images/gp1/{image.id.upper()}.jpg",
        "/images/gp1/6ccf0c39-a6c9-4841-8da9-fef5d65985fd.jpg",  # unknown id
        "/images/gp1/metadata.jsonl",
        "/images/gp1/case_counter.json",
        "/images/gp1/",
        "/images/..%2Fallcare.db/x.jpg",
        "/images/gp1/..%2F..%2Fallcare.db",
        "/images/.jwt_secret",
        f"/images/{image.blob_key}",
    ]:
        response = api.client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/json", path


def test_each_view_is_recorded_with_the_owner(api: Api) -> None:
    api.add_user("gp1", "gp")
    image = store_photo(api.container, "gp1", None)
    api.client.get(f"/images/gp1/{image.id}.jpg", headers={"User-Agent": "app"})
    api.client.get("/images/gp1/6ccf0c39-a6c9-4841-8da9-fef5d65985fd.jpg")
    with api.container.db.session() as session:
        events = list(session.scalars(select(AccessEvent).order_by(AccessEvent.id)))
    assert [(e.action, e.outcome, e.owner_id) for e in events] == [
        ("image.view", "ok", "gp1"),
        ("image.view", "not_found", None),
    ]
    assert events[0].resource == f"image:{image.id}"
    assert events[0].actor_kind == "anonymous_url"
    assert events[0].client


def test_encrypted_storage_keeps_no_plaintext_on_disk(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(encrypt_storage=True, data_encryption_key=ENCRYPTION_KEY)
    api = make_api(settings)
    api.add_user("gp1", "gp")
    gp = api.as_user("gp1")
    case_id = gp.post("/cases/next-id").json()["case_id"]
    data = jpeg_bytes()
    image = store_photo(api.container, "gp1", int(case_id), data)
    secret_note = "patient-secret-note-4711"
    gp.post("/cases", json={"case_id": case_id, "notes": secret_note, "age": "61"})

    assert image.key_id is not None
    blob_files = [p for p in (settings.storage_root / "blobs").rglob("*") if p.is_file()]
    assert len(blob_files) == 1
    assert blob_files[0].suffix == ".enc"
    assert data[:64] not in blob_files[0].read_bytes()
    with api.container.db.session() as session:
        rows = [c.details for c in session.scalars(select(Case))]
        rows += [d.details for d in session.scalars(select(CaseDecision))]
    assert all(secret_note.encode() not in (row or b"") for row in rows)
    if settings.sqlalchemy_url.startswith("sqlite"):
        db_bytes = b"".join(
            p.read_bytes() for p in settings.storage_root.glob("allcare.db*") if p.is_file()
        )
        assert secret_note.encode() not in db_bytes

    assert api.client.get(f"/images/gp1/{image.id}.jpg").content == data
    assert gp.get("/cases").json()["cases"][0]["notes"] == secret_note


def test_data_stays_readable_when_encryption_is_turned_on_later(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    plain = make_api(make_settings())
    plain.add_user("gp1", "gp")
    old = store_photo(plain.container, "gp1", None)
    encrypted = make_api(make_settings(encrypt_storage=True, data_encryption_key=ENCRYPTION_KEY))
    new = store_photo(encrypted.container, "gp1", None)
    assert encrypted.client.get(f"/images/gp1/{old.id}.jpg").status_code == 200
    assert encrypted.client.get(f"/images/gp1/{new.id}.jpg").status_code == 200


def test_missing_key_for_encrypted_data_is_a_loud_json_error(
    make_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Loud, but the key id and the reason go to the log, not to whoever asked."""
    encrypted = make_api(make_settings(encrypt_storage=True, data_encryption_key=ENCRYPTION_KEY))
    encrypted.add_user("gp1", "gp")
    image = store_photo(encrypted.container, "gp1", None)
    keyless = make_api(make_settings())
    response = keyless.client.get(f"/images/gp1/{image.id}.jpg")
    assert response.status_code == 500
    assert response.json() == {
        "detail": "Stored data could not be decrypted; the server log says why"
    }
    [logged] = [r.getMessage() for r in caplog.records if "Undecryptable" in r.getMessage()]
    assert "not configured" in logged
    assert image.id not in logged


def test_a_failed_commit_leaves_neither_row_nor_file(api: Api, settings: Settings) -> None:
    api.add_user("gp1", "gp")
    engine = api.container.db.engine

    def note_image_insert(
        connection: Connection, _cursor: object, statement: str, *_: object
    ) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO IMAGES"):
            connection.info["stores_image"] = True

    def fail_when_storing_an_image(connection: Connection) -> None:
        if connection.info.pop("stores_image", False):
            raise OSError("disk full while committing")

    event.listen(engine, "before_cursor_execute", note_image_insert)
    event.listen(engine, "commit", fail_when_storing_an_image)
    try:
        with pytest.raises(OSError, match="disk full"):
            store_photo(api.container, "gp1", None)
    finally:
        event.remove(engine, "before_cursor_execute", note_image_insert)
        event.remove(engine, "commit", fail_when_storing_an_image)
    assert _image_rows(api) == 0
    assert _blob_files(settings.storage_root) == []


@pytest.mark.parametrize("crash_point", ["mid_write", "before_commit", "after_commit"])
def test_killed_process_leaves_no_dangling_row_or_half_file(
    api: Api, settings: Settings, make_api: Callable[..., Api], crash_point: str
) -> None:
    """SIGKILL the process storing a photo at each step, restart, and check consistency."""
    api.add_user("gp1", "gp")
    child = subprocess.run(
        [sys.executable, "-m", "tests.crash_child", crash_point],
        cwd=Path(__file__).parents[2],
        env={
            **os.environ,
            "STORAGE_ROOT": str(settings.storage_root),
            "DATABASE_URL": settings.sqlalchemy_url,
            "JWT_SECRET_KEY": TEST_JWT_SECRET,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with api.container.db.session() as session:
        rows = list(session.scalars(select(Image)))
    if crash_point == "after_commit":
        [row] = rows
        assert _blob_files(settings.storage_root) != []
    else:
        assert rows == []  # no row ever points at a missing or partial file

    let_intent_leases_pass(settings)
    restarted = make_api(settings)  # start-up recovery removes what the crash left
    files = _blob_files(settings.storage_root)
    if crash_point == "after_commit":
        served = restarted.client.get(f"/images/gp1/{row.id}.jpg")
        assert served.status_code == 200
        assert hashlib.sha256(served.content).hexdigest() == row.sha256
        assert len(files) == 1
    else:
        assert files == []
    with restarted.container.db.session() as session:
        assert session.scalar(select(func.count()).select_from(BlobIntent)) == 0


def _image_rows(api: Api) -> int:
    with api.container.db.session() as session:
        return session.scalar(select(func.count()).select_from(Image)) or 0


def _blob_files(root: Path) -> list[Path]:
    return [p for p in (root / "blobs").rglob("*") if p.is_file()]


def test_guessing_image_addresses_is_slowed_and_cheap_to_audit(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    """Each miss took the write lock for an audit row, without limit. Now a client address
    gets IMAGE_URL_MISSES_PER_MINUTE misses, then 429 for every lookup (a hit included, so the
    answers tell nothing); the refusals of one spell make one audit row, every hit its own."""
    api = make_api(make_settings(image_url_misses_per_minute=5, forwarded_allow_ips="testclient"))
    api.add_user("gp1", "gp")
    image = store_photo(api.container, "gp1", None)
    guesser = {"X-Forwarded-For": "10.6.6.6"}
    statuses = [
        api.client.get(f"/images/gp1/{uuid.uuid4()}.jpg", headers=guesser).status_code
        for _ in range(40)
    ]
    assert statuses == [404] * 5 + [429] * 35
    refused = api.client.get(f"/images/gp1/{image.id}.jpg", headers=guesser)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    clinic = {"X-Forwarded-For": "10.0.0.7"}
    assert api.client.get(f"/images/gp1/{image.id}.jpg", headers=clinic).status_code == 200
    with api.container.db.session() as session:
        rows = [
            (e.outcome, e.client)
            for e in session.scalars(select(AccessEvent).order_by(AccessEvent.id))
        ]
    assert rows == [("not_found", "10.6.6.6")] * 5 + [
        ("throttled", "10.6.6.6"),
        ("ok", "10.0.0.7"),
    ]
