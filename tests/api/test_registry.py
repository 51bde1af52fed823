"""The model registry through the admin API: registration, assets, activation, promotion,
rollback, the training configuration and the retraining refusals (contract 2.15-2.33)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from allcare.core.config import Settings
from tests.conftest import Api
from tests.models import tiny_torchscript
from tests.photos import sharp_photo
from tests.uploads import camera, upload


@pytest.fixture
def start(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], tmp_path: Path
) -> Callable[..., Api]:
    (tmp_path / "assets").mkdir()

    def run(model: Path | None = None, **overrides: object) -> Api:
        values = {
            "model_path": model or tiny_torchscript(tmp_path / "first.pt"),
            "inference_runtime": "torch",
            "model_assets_dir": tmp_path / "assets",
        } | overrides
        api = make_api(make_settings(**values))
        for user, role in (("gp1", "gp"), ("doc1", "doctor"), ("admin1", "admin")):
            try:
                api.add_user(user, role)
            except Exception:  # noqa: S112 - already there after a restart
                continue
        return api

    return run


def serving(api: Api) -> str:
    return upload(api.client, camera("gp1"), predict_only="true").json()["model_version"]


def models(admin: TestClient) -> dict[str, object]:
    return admin.get("/admin/models").json()


def statuses(admin: TestClient) -> dict[str, str]:
    return {m["version_id"]: m["status"] for m in models(admin)["models"]}


def test_model_path_seeds_the_registry_and_a_new_file_is_a_deployment(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    first = start()
    admin = first.as_user("admin1")
    [v1] = statuses(admin)
    assert serving(first) == v1
    first.client.__exit__(None, None, None)

    again = start()
    assert statuses(again.as_user("admin1")) == {v1: "production"}
    again.client.__exit__(None, None, None)

    newer = start(tiny_torchscript(tmp_path / "second.pt", seed=7))
    admin = newer.as_user("admin1")
    registry = models(admin)
    v2 = registry["current_production"]
    assert statuses(admin) == {v1: "archived", v2: "production"}
    assert registry["active_inference"] == v2
    assert serving(newer) == v2
    events = admin.get("/admin/events", params={"type": "model_registered"}).json()["events"]
    assert [e["metadata"]["version_id"] for e in events] == [v2, v1]


def test_assets_are_listed_activated_with_the_truth_and_remembered(
    start: Callable[..., Api], tmp_path: Path
) -> None:
    api = start()
    admin = api.as_user("admin1")
    assets = tmp_path / "assets"
    tiny_torchscript(assets / "b_model.pt", seed=2)
    tiny_torchscript(assets / "a_torchscript.pt", seed=3)
    (assets / "notes.txt").write_text("not a model")
    (assets / ".hidden.pt").write_bytes(b"x")
    (assets / "broken.pth").write_bytes(b"not a model at all")
    listing = admin.get("/admin/models/assets").json()
    assert [m["file_name"] for m in listing["models"]] == [
        "a_torchscript.pt",
        "b_model.pt",
        "broken.pth",
    ]
    assert not any(m["is_active"] for m in listing["models"])
    assert listing["models"][1]["size_bytes"] == (assets / "b_model.pt").stat().st_size

    before = serving(api)
    broken = admin.post("/admin/models/assets/activate", json={"file_name": "broken.pth"})
    assert broken.status_code == 400
    assert broken.json()["detail"].startswith("Failed to load broken.pth")
    assert serving(api) == before
    assert "failed" in statuses(admin).values()

    for name, status, detail in (
        ("../first.pt", 400, "Invalid model file_name"),
        ("sub/x.pt", 400, "Invalid model file_name"),
        ("notes.txt", 400, "Unsupported model extension"),
        ("missing.pt", 404, "Model file not found"),
    ):
        response = admin.post("/admin/models/assets/activate", json={"file_name": name})
        assert (response.status_code, response.json()) == (status, {"detail": detail})

    done = admin.post("/admin/models/assets/activate", json={"file_name": "b_model.pt"}).json()
    assert done["model_loaded"] is True
    assert done["message"] == "Active inference model set to b_model.pt"
    version = done["version_id"]
    assert serving(api) == version
    listing = admin.get("/admin/models/assets").json()
    assert listing["active_model_path"] == str(assets / "b_model.pt")
    assert [m["is_active"] for m in listing["models"]] == [False, True, False]
    registry = models(admin)
    assert registry["active_inference"] == version
    assert registry["current_production"] != version  # activation serves, it does not promote
    api.client.__exit__(None, None, None)
    assert serving(start()) == version  # remembered across a restart (D12)


def test_activate_promote_and_rollback_rules(start: Callable[..., Api], tmp_path: Path) -> None:
    api = start()
    admin = api.as_user("admin1")
    v1 = models(admin)["current_production"]
    tiny_torchscript(tmp_path / "assets" / "candidate.pt", seed=5)
    v2 = admin.post("/admin/models/assets/activate", json={"file_name": "candidate.pt"}).json()[
        "version_id"
    ]
    assert admin.post(f"/admin/models/{v1}/activate").json()["active_inference"]["version_id"] == v1
    assert serving(api) == v1

    assert admin.post(f"/admin/models/{v2}/promote").status_code == 422  # a reason is required
    assert admin.post(f"/admin/models/{v2}/promote", json={"reason": " "}).status_code == 422
    promoted = admin.post(f"/admin/models/{v2}/promote", json={"reason": "better on our cases"})
    assert promoted.json() == {
        "status": "ok",
        "message": f"Model {v2} promoted to production",
        "success": True,
        "version_id": v2,
        "previous_production": v1,
        "reason": "better on our cases",
    }
    assert serving(api) == v2
    assert statuses(admin) == {v1: "archived", v2: "production"}
    again = admin.post(f"/admin/models/{v2}/promote", json={"reason": "again"})
    assert again.status_code == 409
    assert admin.post("/admin/models/v20990101_001/promote", json={"reason": "x"}).json() == {
        "detail": "Model v20990101_001 not found"
    }
    assert admin.post("/admin/models/nonsense/promote", json={"reason": "x"}).status_code == 404
    refused = admin.post(f"/admin/models/{v1}/activate")
    assert refused.json() == {"detail": "Only production or candidate models can be activated"}

    back = admin.post(f"/admin/models/{v1}/rollback", json={"reason": "regression"}).json()
    assert (back["success"], back["from_version"], back["to_version"]) == (True, v2, v1)
    assert serving(api) == v1
    assert admin.post(f"/admin/models/{v1}/rollback", json={}).status_code == 409
    previous = admin.post("/admin/models/rollback", json={"reason": "undo"}).json()
    assert previous["to_version"] == v2
    events = [e["type"] for e in admin.get("/admin/events").json()["events"]]
    assert events.count("model_rollback") == 2
    assert "model_promoted" in events
    assert admin.get("/admin/events", params={"limit": 1}).json()["total"] == 1
    assert admin.get("/admin/events", params={"since": "2999-01-01T00:00:00Z"}).json() == {
        "status": "ok",
        "events": [],
        "total": 0,
    }
    naive = admin.get("/admin/events", params={"since": "2000-01-01T00:00:00"}).json()
    assert naive["total"] == len(events)
    assert admin.get("/admin/events", params={"limit": 0}).status_code == 422
    assert admin.get("/admin/events", params={"since": "yesterday"}).status_code == 422

    (tmp_path / "assets" / "bad.pt").write_bytes(b"garbage")
    admin.post("/admin/models/assets/activate", json={"file_name": "bad.pt"})
    failed = next(v for v, s in statuses(admin).items() if s == "failed")
    refused = admin.post(f"/admin/models/{failed}/promote", json={"reason": "try"})
    assert refused.status_code == 400
    assert refused.json() == {"detail": f"Model {failed} is failed and cannot be promoted"}
    production = admin.get("/admin/models/production").json()["production_model"]
    assert production["version_id"] == v2
    active = admin.get("/admin/models/active").json()["active_inference"]
    assert active["version_id"] == active["serving"] == v2


def test_training_configuration_is_validated_merged_and_audited(start: Callable[..., Api]) -> None:
    admin = start().as_user("admin1")
    current = admin.get("/admin/training-config").json()
    assert (
        current["config"]
        == current["defaults"]
        == {
            "epochs": 10,
            "batch_size": 16,
            "learning_rate": 0.0001,
            "optimizer": "Adam",
            "dropout": 0.3,
            "augmentation_applied": True,
            "min_steps": 300,
            "melanoma_weight": 2.0,
        }
    )
    for bad in (
        {"epochs": 0},
        {"epochs": 101},
        {"batch_size": 129},
        {"learning_rate": 2.0},
        {"optimizer": "adam"},
        {"dropout": 0.95},
        {"min_steps": -1},
        {"melanoma_weight": 0.5},
        {"melanoma_weight": 11},
        {"architecture": "yolo"},
        {"epochs": "ten"},
        {"min_steps": True},
        {"augmentation_applied": "yes"},
        {"dropout": False},
    ):
        response = admin.post("/admin/training-config", json=bad)
        assert response.status_code == 422, bad
        assert isinstance(response.json()["detail"], list)
    assert admin.post("/admin/training-config", json={}).json() == {
        "detail": "No configuration values provided"
    }
    admin.post("/admin/training-config", json={"epochs": 3})
    merged = admin.post("/admin/training-config", json={"optimizer": "SGD"}).json()["config"]
    assert (merged["epochs"], merged["optimizer"]) == (3, "SGD")
    assert admin.get("/admin/training-config").json()["config"] == merged
    [event, _] = admin.get("/admin/events", params={"event_type": "config_updated"}).json()[
        "events"
    ]
    assert event["metadata"]["changes"] == {"optimizer": "SGD"}
    # One vocabulary with /admin/retrain/trigger: its aliases are accepted, stored as the id.
    named = admin.post("/admin/training-config", json={"architecture": "MobileNet"}).json()
    assert named["config"]["architecture"] == "mobilenet_v3_large"
    assert event["actor"] == "admin1"


def test_retraining_refusals_say_why(start: Callable[..., Api]) -> None:
    api = start()
    admin = api.as_user("admin1")
    assert admin.post("/admin/retrain/trigger", json={}).json() == {
        "status": "skipped",
        "success": False,
        "reason": "Below threshold",
        "current_labels": 0,
        "threshold": 20,
        "message": "Use force=true to override",
    }
    refused = admin.post("/admin/retrain/trigger", json={"architecture": "yolo", "force": True})
    assert refused.json()["detail"].startswith("0 trainable labels")
    gp, doctor = api.as_user("gp1"), api.as_user("doc1")
    labelled = 0
    while labelled < 3:
        case_id = gp.post("/cases/next-id").json()["case_id"]
        body = upload(api.client, camera("gp1"), sharp_photo(seed=labelled), case_id=case_id).json()
        gp.post("/cases", json={"case_id": case_id, "image_paths": [f"gp1/{body['image_id']}.jpg"]})
        doctor.post(f"/cases/{case_id}/label", json={"correct_label": "nv"})
        labelled = admin.get("/admin/labels/count").json()["unused_labels"]
    refused = admin.post("/admin/retrain/trigger", json={"architecture": "yolo", "force": True})
    assert (refused.status_code, refused.json()) == (
        400,
        {"detail": "Unsupported architecture: yolo"},
    )
    refused = admin.post("/admin/retrain/trigger", json={"force": True})
    assert refused.status_code == 400
    assert "cannot be fine-tuned" in refused.json()["detail"]
    refused = admin.post("/admin/retrain/trigger", json={"architecture": "resnet", "force": True})
    assert refused.json() == {
        "detail": "No resnet50 model to start from: train one with `allcare train "
        "--architecture resnet50`"
    }
    listing = admin.get("/admin/retrain/architectures").json()
    assert listing["default_architecture"] == "efficientnet_lite0"
    offered = {a["id"]: a["available"] for a in listing["architectures"]}
    assert offered == {
        "efficientnet_lite0": True,
        "resnet50": True,
        "efficientnet_v2_m": True,
        "mobilenet_v3_large": True,
        "yolo": False,
    }
    status = admin.get("/admin/retrain/status").json()
    assert status["retrain_status"] == {"status": "not_started", "last_retrain": None}
    assert status["threshold"] == {"should_retrain": False, "current_labels": 3, "required": 20}


def test_admin_routes_need_an_admin_and_legacy_model_routes(start: Callable[..., Api]) -> None:
    api = start()
    for user in ("gp1", "doc1"):
        client = api.as_user(user)
        for method, path in (
            ("get", "/admin/models"),
            ("get", "/admin/events"),
            ("post", "/admin/retrain/trigger"),
            ("post", "/admin/models/assets/activate"),
            ("get", "/admin/training-config"),
        ):
            response = getattr(client, method)(path)
            assert (response.status_code, response.json()) == (
                403,
                {"detail": "Admin role required"},
            )
    gp = api.as_user("gp1")
    assert gp.get("/model/retrain-status").json() == {"status": "not_started", "last_retrain": None}
    assert gp.post("/model/retrain").json() == {
        "detail": "Only admins can trigger model retraining"
    }
    assert api.as_user("admin1").post("/model/retrain").json() == {
        "status": "skipped",
        "reason": "insufficient_rejected_labels",
        "required": 20,
        "current": 0,
    }
    assert api.client.get("/admin/models").status_code == 401
