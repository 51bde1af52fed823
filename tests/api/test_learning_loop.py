"""Learning-loop scenarios through the HTTP API: a candidate worse on melanoma refused, one run
at a time with automatic start and cancel, a killed worker."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from allcare.ml.classes import CLASS_NAMES
from allcare.store.models import ModelVersion
from tests.conftest import Api
from tests.learning import labelled_cases, predict, wait_for_run


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Training runs are slow on a CPU: these scenarios run on SQLite only; the whole cycle runs
    on both databases in test_learning_cycle.py."""
    return f"sqlite:///{tmp_path / 'storage' / 'allcare.db'}"


def test_a_candidate_that_misses_melanoma_is_rejected_and_never_serves(
    loop: Callable[..., Api],
) -> None:
    """Production answers mel for everything (melanoma recall 1.0); the doctors' new labels
    hold no melanoma, so the candidate forgets it and must not replace production."""
    api = loop("mel")
    admin, gp, doctor = (api.as_user(u) for u in ("admin1", "gp1", "doc1"))
    share = api.container.settings.eval_holdout_share
    without_mel = tuple(label for label in CLASS_NAMES if label != "mel")
    labelled_cases(
        api.client, gp, doctor, "gp1", share, train_per_class=4, train_classes=without_mel
    )
    production = admin.get("/admin/models").json()["current_production"]
    candidate = admin.post("/admin/retrain/trigger", json={"force": True}).json()["version_id"]
    wait_for_run(admin)

    registry = admin.get("/admin/models").json()
    judged = {m["version_id"]: m for m in registry["models"]}[candidate]
    assert judged["status"] == "rejected", json.dumps(judged["evaluation"])
    assert judged["evaluation"]["verdict"] == "reject"
    assert any("melanoma sensitivity" in reason for reason in judged["evaluation"]["reasons"])
    change = judged["evaluation"]["comparison"]["mel_recall_change"]
    assert change["estimate"] == change["high"] == -1.0  # every resample: the melanoma missed
    assert registry["current_production"] == registry["active_inference"] == production
    assert predict(api, "mel")["model_version"] == production
    events = admin.get("/admin/events", params={"event_type": "candidate_rejected"}).json()
    assert events["events"][0]["metadata"]["version_id"] == candidate
    refused = admin.post(f"/admin/models/{candidate}/activate")
    assert refused.status_code == 400
    assert refused.json()["detail"] == "Only production or candidate models can be activated"


def test_every_run_trains_on_all_labels_and_only_promotion_spends_them(
    loop: Callable[..., Api],
) -> None:
    """The set a run is judged on is fixed and recorded when it is triggered; a label that
    arrives meanwhile waits for the next run."""
    api = loop("mel")
    admin, gp, doctor = (api.as_user(u) for u in ("admin1", "gp1", "doc1"))
    share = api.container.settings.eval_holdout_share
    without_mel = tuple(label for label in CLASS_NAMES if label != "mel")
    made = labelled_cases(
        api.client, gp, doctor, "gp1", share, train_per_class=2, train_classes=without_mel
    )
    first = admin.post("/admin/retrain/trigger", json={"force": True}).json()
    assert (first["labels_used"], first["new_samples"]) == (12, 12)
    assert first["evaluation_set"] == {"source": "clinic", "cases": 7, "groups": 7, "photos": 7}
    recorded = admin.get(f"/admin/models/{first['version_id']}/evaluation-set").json()
    assert sorted(str(c["case_id"]) for c in recorded["evaluation_set"]["cases"]) == sorted(
        case_id for case_id, _ in made["holdout"]
    )
    labelled_cases(
        api.client, gp, doctor, "gp1", share, train_per_class=0, holdout_per_class=1
    )  # 7 more held-out cases while the run trains
    wait_for_run(admin)
    judged = {m["version_id"]: m for m in admin.get("/admin/models").json()["models"]}
    run = judged[first["version_id"]]
    assert run["status"] == "rejected"
    assert run["metrics"]["labels_used"] == 12
    # 12 clinic labels are too few to hold a calibration share back: said, not hidden.
    assert run["metrics"]["calibration"]["temperature"] == 1.0
    assert "fewer than 30 calibration photos" in run["metrics"]["calibration"]["note"]
    assert run["evaluation"]["eval_cases"] == 7
    assert run["evaluation"]["candidate"]["intervals"]["balanced_accuracy"]["low"] is not None
    assert admin.get("/admin/labels/count").json()["unused_labels"] == 12  # rejected: unspent

    labelled_cases(api.client, gp, doctor, "gp1", share, train_per_class=1, holdout_per_class=0)
    second = admin.post("/admin/retrain/trigger", json={"force": True}).json()
    assert (second["labels_used"], second["new_samples"]) == (19, 19)
    assert second["evaluation_set"]["cases"] == 14
    admin.post("/admin/retrain/cancel")
    wait_for_run(admin)


def test_one_run_at_a_time_automatic_start_and_cancel(loop: Callable[..., Api]) -> None:
    api = loop("nv", retrain_auto=True, retrain_min_new_labels=14)
    admin, gp, doctor = (api.as_user(u) for u in ("admin1", "gp1", "doc1"))
    admin.post("/admin/training-config", json={"epochs": 50})
    share = api.container.settings.eval_holdout_share
    labelled_cases(api.client, gp, doctor, "gp1", share, train_per_class=2, holdout_per_class=0)
    running = admin.get("/admin/retrain/status").json()
    assert running["retrain_status"]["status"] == "training", running
    version = running["retrain_status"]["version_id"]
    events = admin.get("/admin/events").json()["events"]
    trigger = next(e for e in events if e["type"] == "retrain_triggered")
    assert trigger["actor"] == "system"
    assert trigger["metadata"]["automatic"] is True
    assert any(e["type"] == "threshold_reached" for e in events)

    def trigger_again(_: int) -> dict[str, object]:
        return api.as_user("admin1").post("/admin/retrain/trigger", json={"force": True}).json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(trigger_again, range(8)))
    assert all(answer["success"] is False for answer in answers)
    assert {answer["version_id"] for answer in answers} == {version}

    labelled_cases(api.client, gp, doctor, "gp1", share, train_per_class=2, holdout_per_class=0)
    assert admin.get("/admin/retrain/status").json()["retrain_status"]["version_id"] == version

    cancelled = admin.post("/admin/retrain/cancel").json()
    assert cancelled["version_id"] == version
    # The 14 labels that arrived during the cancelled run start the next one on their own, once
    # the worker is gone.
    deadline = time.monotonic() + 120
    while (status := admin.get("/admin/retrain/status").json()["retrain_status"]).get(
        "version_id"
    ) in (version, None) or status["status"] != "training":
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    follow_up = status["version_id"]
    entry = {m["version_id"]: m for m in admin.get("/admin/models").json()["models"]}[version]
    assert entry["status"] == "failed"
    assert entry["error"] == "cancelled by admin1"
    trigger = admin.get("/admin/events", params={"event_type": "retrain_triggered"}).json()
    assert trigger["events"][0]["metadata"]["labels"] == 28  # every label, not the new ones
    admin.post("/admin/retrain/cancel")
    wait_for_run(admin, timeout=120)
    assert admin.post("/admin/retrain/cancel").status_code == 404
    counts = admin.get("/admin/labels/count").json()
    assert (counts["total_labels"], counts["unused_labels"]) == (28, 28)  # nothing spent
    started = admin.get("/admin/events", params={"event_type": "retrain_triggered"}).json()
    assert [e["metadata"]["version_id"] for e in started["events"]] == [follow_up, version]


def test_a_killed_worker_fails_the_run_and_leaves_the_registry_consistent(
    loop: Callable[..., Api],
) -> None:
    api = loop("nv")
    admin, gp, doctor = (api.as_user(u) for u in ("admin1", "gp1", "doc1"))
    admin.post("/admin/training-config", json={"epochs": 50})
    share = api.container.settings.eval_holdout_share
    labelled_cases(api.client, gp, doctor, "gp1", share, train_per_class=2, holdout_per_class=0)
    before = admin.get("/admin/models").json()
    version = admin.post("/admin/retrain/trigger", json={"force": True}).json()["version_id"]
    deadline = time.monotonic() + 120
    while admin.get("/admin/retrain/status").json()["retrain_status"].get("phase") != "training":
        assert time.monotonic() < deadline, "the run never started training"
        time.sleep(0.2)
    with api.container.db.session() as session:
        pid = session.get(ModelVersion, version).worker_pid
    os.kill(pid, signal.SIGKILL)
    wait_for_run(admin, timeout=60)

    after = admin.get("/admin/models").json()
    entry = {m["version_id"]: m for m in after["models"]}[version]
    assert entry["status"] == "failed"
    assert "killed by SIGKILL" in entry["error"]
    assert entry["path"] is None
    assert after["current_production"] == before["current_production"]
    assert after["active_inference"] == before["active_inference"]
    folder = api.container.settings.models_dir / version
    assert not [p for p in folder.glob("*") if p.name != "worker.log"]
    failed = admin.get("/admin/events", params={"event_type": "training_failed"}).json()
    assert failed["events"][0]["metadata"]["version_id"] == version
    assert admin.post("/admin/retrain/trigger", json={"force": True}).json()["success"] is True
    admin.post("/admin/retrain/cancel")
    wait_for_run(admin, timeout=120)
