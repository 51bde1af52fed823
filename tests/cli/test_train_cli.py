"""``allcare train`` and ``allcare models``: a clinic's first model, then the registry from a
shell; and the learning loop on real HAM10000 photos when ham10000-dev is present."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from allcare.cli import app
from allcare.container import open_store
from allcare.core.config import Settings
from allcare.services.learning.status import running_version
from allcare.store.models import Event, ModelVersion
from tests.conftest import Api
from tests.learning import add_case, colour_folder, wait_for_run

HAM = Path(__file__).parents[2].parent / "shared" / "data" / "ham10000-dev"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Training is slow on a CPU: SQLite only (the registry runs on PostgreSQL elsewhere)."""
    return f"sqlite:///{tmp_path / 'storage' / 'allcare.db'}"


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    for name, value in (
        ("STORAGE_ROOT", str(settings.storage_root)),
        ("DATABASE_URL", settings.sqlalchemy_url),
        ("INFERENCE_RUNTIME", "torch"),
        ("TRAINING_THREADS", "2"),
    ):
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_a_first_model_from_a_folder_is_registered_promoted_and_served(
    run: Callable[..., object], tmp_path: Path, make_api: Callable[..., Api], settings: Settings
) -> None:
    folder = colour_folder(tmp_path / "data")
    train = ("train", str(folder), "--epochs", "1", "--batch-size", "7", "--promote")
    result = run(*train, "--force", "--reason", "a test of the mechanics")
    assert result.exit_code == 0, result.output
    assert "Registered v" in result.output
    assert "is in production and serves predictions: balanced accuracy" in result.output
    assert "below the promotion floor" in result.output  # one epoch on 35 photos is weak
    listing = run("models", "list")
    assert listing.exit_code == 0
    header, line, legend = listing.stdout.strip().splitlines()
    assert header.split() == [
        "VERSION",
        "STATUS",
        "ARCHITECTURE",
        "CREATED",
        "BAL.ACC",
        "MEL.SENS",
        "SOURCE",
    ]
    assert legend.startswith("P: production, A: serving now")
    assert line.startswith("PA v")
    assert "production efficientnet_lite0" in line
    version = line.split()[1]

    api = make_api()
    api.add_user("admin1", "admin")
    admin = api.as_user("admin1")
    [model] = admin.get("/admin/models").json()["models"]
    assert (model["version_id"], model["source"]) == (version, "command")
    assert model["metrics"]["eval_images"] == 7
    assert admin.get(f"/admin/models/{version}/training-log").json()["total_epochs"] == 1
    assert api.container.engine.model.version == version

    missing = run("train", str(tmp_path / "nowhere"))
    assert missing.exit_code == 1
    assert "labels.csv not found" in missing.output
    assert run("models", "activate", "v20990101_001").exit_code == 1


def test_a_run_that_fails_after_training_is_failed_with_its_reason(
    run: Callable[..., object],
    tmp_path: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once registered as ``training``, any failure (here the proof that the file loads as
    serving loads it) marks the run failed with the reason; a phantom running run would block
    automatic retraining until a restart."""
    from allcare.ml.model_source import ModelLoadError
    from allcare.services.learning import candidate

    def refuses(*_args: object, **_kwargs: object) -> None:
        raise ModelLoadError("the export differs from PyTorch")

    monkeypatch.setattr(candidate, "load_model", refuses)
    result = run("train", str(colour_folder(tmp_path / "data")), "--epochs", "1")
    assert result.exit_code != 0
    db, _ = open_store(settings)
    try:
        with db.session() as session:
            [version] = session.scalars(select(ModelVersion)).all()
            assert running_version(session) is None
            events = [e.type for e in session.scalars(select(Event))]
    finally:
        db.dispose()
    assert version.status == "failed"
    assert version.error == "ModelLoadError: the export differs from PyTorch"
    assert "training_failed" in events


@pytest.mark.skipif(not HAM.exists(), reason="ham10000-dev data set not present")
def test_the_learning_loop_on_real_ham10000_photos(
    run: Callable[..., object], make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    """A first model from a few real photos, then real lesion photos uploaded, labelled by a
    doctor with their true diagnosis, and a fine-tuning run judged on held-out real photos."""
    first = run("train", str(HAM), "--mini", "--limit", "35", "--epochs", "1", "--promote")
    # So few photos make a weak model: registered, but kept out of production by the floor.
    assert first.exit_code == 1
    assert "was not promoted: balanced accuracy" in first.output
    assert "is below the floor 0.50" in first.output
    assert "To serve it anyway, pass --force with a --reason" in first.output
    version = next(w for w in first.output.split() if w.startswith("v2")).rstrip(":")
    forced = run("models", "promote", version, "--reason", "a test's weak first model", "--force")
    assert forced.exit_code == 0, forced.output
    assert "promoted with --force" in forced.output
    api = make_api(
        make_settings(
            inference_runtime="torch",
            training_threads=2,
            retrain_auto=False,
            retrain_min_steps=10,
            upload_rate_per_minute=10_000,
        )
    )
    for user, role in (("gp1", "gp"), ("doc1", "doctor"), ("admin1", "admin")):
        api.add_user(user, role)
    gp, doctor, admin = (api.as_user(u) for u in ("gp1", "doc1", "admin1"))
    admin.post("/admin/training-config", json={"epochs": 1, "batch_size": 8})
    with (HAM / "labels.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["mini"] == "1" and r["split"] == "test"]
    for row in rows[:40]:
        photo = (HAM / "images" / f"{row['image_id']}.jpg").read_bytes()
        case_id = add_case(api.client, gp, "gp1", lambda _case, photo=photo: photo)
        labelled = doctor.post(f"/cases/{case_id}/label", json={"correct_label": row["dx"]})
        assert labelled.status_code == 200
    started = admin.post("/admin/retrain/trigger", json={"force": True}).json()
    assert started["success"] is True, started
    wait_for_run(admin, timeout=300)
    judged = {m["version_id"]: m for m in admin.get("/admin/models").json()["models"]}[
        started["version_id"]
    ]
    assert judged["status"] in ("production", "evaluating", "rejected"), judged["error"]
    assert judged["evaluation"]["eval_images"] > 0
    assert judged["metrics"]["samples_used"] == started["samples_used"]
    # Replay: as many founding photos as clinic labels (RETRAIN_REPLAY_SHARE 0.5), at most 35.
    assert judged["metrics"]["replay_samples"] == min(35, judged["metrics"]["labels_used"])
    assert judged["metrics"]["replay_source"] == str(HAM.resolve())


def test_an_admin_registers_a_curated_evaluation_set(
    run: Callable[..., object], tmp_path: Path
) -> None:
    folder = colour_folder(tmp_path / "data")
    assert "clinic: 0 cases" in run("evaluation-set", "show").output
    registered = run("evaluation-set", "register", str(folder), "--split", "val")
    assert registered.exit_code == 0, registered.output
    assert "7 photos of 7 lesions (split 'val'" in registered.output
    assert "folder (split 'val'" in run("evaluation-set", "show").output
    assert "7 cases, 7 groups, 7 photos" in run("evaluation-set", "show").output
    missing = run("evaluation-set", "register", str(folder), "--split", "nowhere")
    assert missing.exit_code == 1
    assert "no photos of split 'nowhere'" in missing.output
    assert run("evaluation-set", "clear").exit_code == 0
    assert "clinic: 0 cases" in run("evaluation-set", "show").output
