"""SIGKILL the real server process (``allcare serve``) while clients upload photos, and while a
training run is in progress; restart it and check that nothing committed was lost and nothing
half-done was left: no row without its file, no file without its row, no partial file, no
dangling intent, no run stuck in "training", production unchanged."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from allcare.container import open_store
from allcare.core.config import Settings
from allcare.core.durable import PARTIAL_SUFFIX
from allcare.store.models import BlobIntent, Case, Image, ModelVersion
from tests.learning import TRAINING, labelled_cases, mobilenet_checkpoint
from tests.models import tiny_torchscript
from tests.photos import sharp_photo
from tests.servers import Server
from tests.uploads import let_intent_leases_pass

UPLOADERS = 8


def test_killed_during_uploads_loses_no_committed_photo_and_leaves_no_debris(
    make_server: Callable[..., Server], settings: Settings, tmp_path: Path
) -> None:
    users = {f"gp{n}": "gp" for n in range(UPLOADERS)}
    server = make_server(tiny_torchscript(tmp_path / "tiny.pt"), users)
    server.start()
    acknowledged: list[tuple[str, str, str]] = []  # (owner, image id, sha256) answered 200
    stop = threading.Event()

    def upload_until_killed(n: int) -> None:
        photo = sharp_photo(seed=n)
        digest = hashlib.sha256(photo).hexdigest()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                try:
                    answer = client.post(
                        "/check-image",
                        files={"file": ("photo.jpg", photo, "image/jpeg")},
                        headers={"X-User-Id": f"gp{n}"},
                    )
                except httpx.HTTPError:
                    return  # the server is gone
                assert answer.status_code == 200, answer.text
                acknowledged.append((f"gp{n}", answer.json()["image_id"], digest))

    threads = [threading.Thread(target=upload_until_killed, args=(n,)) for n in range(UPLOADERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 40:
        assert time.monotonic() < deadline, "uploads did not get going"
        time.sleep(0.05)
    server.kill()  # with requests in flight at every stage of the upload path
    stop.set()
    for thread in threads:
        thread.join()

    let_intent_leases_pass(settings)
    server.start()  # start-up recovery runs here
    for owner, image_id, digest in acknowledged:
        served = httpx.get(f"{server.url}/images/{owner}/{image_id}.jpg")
        assert served.status_code == 200, (owner, image_id)
        assert hashlib.sha256(served.content).hexdigest() == digest
    db, _ = open_store(settings)
    try:
        with db.session() as session:
            images = list(session.scalars(select(Image)))
            case_ids = set(session.scalars(select(Case.id)))
            intents = session.scalar(select(func.count()).select_from(BlobIntent))
    finally:
        db.dispose()
    assert len(images) >= len(acknowledged)
    assert {image.case_id for image in images} <= case_ids
    assert intents == 0
    blobs = settings.storage_root / "blobs"
    files = {p.relative_to(blobs).as_posix() for p in blobs.rglob("*") if p.is_file()}
    assert files == {image.blob_key for image in images}
    assert not list(blobs.rglob(f"*{PARTIAL_SUFFIX}"))


@pytest.mark.parametrize("worker_survives", [True, False], ids=["server-only", "power-cut"])
def test_killed_during_training_keeps_the_registry_and_the_cases_consistent(
    make_server: Callable[..., Server], settings: Settings, tmp_path: Path, worker_survives: bool
) -> None:
    server = make_server(
        mobilenet_checkpoint(tmp_path / "nv.pt", "nv"),
        {"gp1": "gp", "doc1": "doctor", "admin1": "admin"},
        RETRAIN_AUTO="false",
        TRAINING_THREADS="1",
    )
    server.start()
    admin, gp, doctor = (server.client(u) for u in ("admin1", "gp1", "doc1"))
    assert admin.post("/admin/training-config", json=TRAINING | {"epochs": 50}).status_code == 200
    labelled_cases(
        httpx.Client(base_url=server.url, timeout=60),
        gp,
        doctor,
        "gp1",
        settings.eval_holdout_share,
        train_per_class=2,
        holdout_per_class=0,
    )
    before = admin.get("/admin/models").json()
    cases_before = sorted(c["case_id"] for c in gp.get("/cases?limit=500").json()["cases"])
    version = admin.post("/admin/retrain/trigger", json={"force": True}).json()["version_id"]
    deadline = time.monotonic() + 120
    while admin.get("/admin/retrain/status").json()["retrain_status"].get("phase") != "training":
        assert time.monotonic() < deadline, "the run never started training"
        time.sleep(0.2)
    db, _ = open_store(settings)
    with db.session() as session:
        worker = session.get(ModelVersion, version).worker_pid
    db.dispose()

    server.kill()
    if not worker_survives:
        os.kill(worker, signal.SIGKILL)  # a power cut takes the worker down too
    server.start()
    admin, gp = server.client("admin1"), server.client("gp1")
    if worker_survives:  # the restarted server adopts the run and can still cancel it
        status = admin.get("/admin/retrain/status").json()["retrain_status"]
        assert (status["status"], status["version_id"]) == ("training", version)
        assert admin.post("/admin/retrain/cancel").status_code == 200
    deadline = time.monotonic() + 120
    while admin.get("/admin/retrain/status").json()["retrain_status"]["status"] == "training":
        assert time.monotonic() < deadline, "the run never ended"
        time.sleep(0.5)

    after = admin.get("/admin/models").json()
    entry = {m["version_id"]: m for m in after["models"]}[version]
    assert entry["status"] == "failed"
    assert entry["path"] is None
    assert after["current_production"] == before["current_production"]
    assert after["active_inference"] == before["active_inference"]
    folder = settings.models_dir / version
    assert not [p for p in folder.glob("*") if p.name != "worker.log"]
    assert sorted(c["case_id"] for c in gp.get("/cases?limit=500").json()["cases"]) == cases_before
    assert admin.get("/admin/labels/count").json()["unused_labels"] == 14
    photo = httpx.post(
        f"{server.url}/check-image",
        files={"file": ("p.jpg", sharp_photo(), "image/jpeg")},
        headers={"X-User-Id": "gp1"},
    )
    assert photo.status_code == 200
