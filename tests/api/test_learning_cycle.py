"""The whole learning cycle through the HTTP API, on SQLite and on PostgreSQL: labels, a
background training run on a real MobileNetV3, evaluation on the frozen held-out cases, the
promotion gate, the serving model changing live, rollback."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch

from tests.conftest import Api
from tests.learning import labelled_cases, predict, wait_for_run


def test_a_better_candidate_is_promoted_live_and_rolled_back(loop: Callable[..., Api]) -> None:
    api = loop("nv")
    admin, gp, doctor = (api.as_user(u) for u in ("admin1", "gp1", "doc1"))
    share = api.container.settings.eval_holdout_share
    made = labelled_cases(
        api.client, gp, doctor, "gp1", share, train_per_class=6, holdout_per_class=3
    )
    before = admin.get("/admin/models").json()
    production = before["current_production"]
    counts = admin.get("/admin/labels/count").json()
    assert counts["unused_labels"] == len(made["train"]) == 42
    assert counts["held_out_labels"] == len(made["holdout"]) == 21

    started = admin.post(
        "/admin/retrain/trigger", json={"architecture": "mobilenet", "force": False}
    ).json()
    assert started["success"] is True
    assert started["architecture"] == "mobilenet_v3_large"
    candidate = started["version_id"]
    seen = wait_for_run(admin)
    assert seen["version_id"] == candidate

    models = {m["version_id"]: m for m in admin.get("/admin/models").json()["models"]}
    judged = models[candidate]
    assert judged["status"] == "production", json.dumps(judged["evaluation"])
    assert judged["evaluation"]["verdict"] == "promote"
    assert judged["evaluation"]["production_version"] == production
    assert judged["evaluation"]["eval_images"] == judged["evaluation"]["eval_cases"] == 21
    assert (
        judged["metrics"]["balanced_accuracy"]
        > judged["evaluation"]["production"]["balanced_accuracy"]
    )
    assert models[production]["status"] == "archived"
    registry = admin.get("/admin/models").json()
    assert registry["current_production"] == registry["active_inference"] == candidate
    assert predict(api, "bcc")["model_version"] == candidate
    log = admin.get(f"/admin/models/{candidate}/training-log").json()
    assert log["total_epochs"] == 3
    assert "train_loss" in log["plot_data"]["available_metrics"]
    counts = admin.get("/admin/labels/count").json()
    assert (counts["unused_labels"], counts["used_labels"]) == (0, 42)
    types = [e["type"] for e in admin.get("/admin/events", params={"limit": 200}).json()["events"]]
    for expected in ("retrain_triggered", "training_completed", "model_promoted"):
        assert expected in types

    back = admin.post("/admin/models/rollback", json={"reason": "checking rollback"}).json()
    assert (back["from_version"], back["to_version"]) == (candidate, production)
    assert predict(api, "bcc")["model_version"] == production
    registry = admin.get("/admin/models").json()
    assert registry["current_production"] == registry["active_inference"] == production
    assert {m["version_id"]: m["status"] for m in registry["models"]}[candidate] == "archived"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_training_device_that_is_not_there_fails_the_run_with_the_reason(
    loop: Callable[..., Api],
) -> None:
    """RETRAIN_DEVICE=cuda on a machine without one: the run fails and says what to set,
    instead of training somewhere else or crashing without a reason."""
    api = loop("nv", retrain_device="cuda")
    admin, gp, doctor = (api.as_user(u) for u in ("admin1", "gp1", "doc1"))
    labelled_cases(api.client, gp, doctor, "gp1", 0.2, train_per_class=1)
    started = admin.post("/admin/retrain/trigger", json={"force": True}).json()
    assert started["success"] is True
    wait_for_run(admin)
    [run] = [
        m
        for m in admin.get("/admin/models").json()["models"]
        if m["version_id"] == started["version_id"]
    ]
    assert run["status"] == "failed"
    assert "RETRAIN_DEVICE=cuda, but PyTorch finds no cuda device" in run["error"]
