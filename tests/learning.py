"""Helpers for the learning-loop tests: colour-coded lesion photos whose class a small network
can learn in a few epochs, real MobileNetV3 checkpoints, and cases made through the API."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from fastapi.testclient import TestClient
from PIL import Image

from allcare.core.config import Settings
from allcare.ml.architectures import build
from allcare.ml.classes import CLASS_NAMES
from allcare.services.labels.pool import Split, split_for
from tests.conftest import Api

PALETTE = [
    (220, 30, 30),
    (30, 170, 30),
    (30, 30, 220),
    (220, 220, 30),
    (140, 30, 160),
    (30, 200, 200),
    (250, 150, 60),
]


def colour_photo(label: str, seed: int) -> bytes:
    """A sharp photo whose colour says its class (the blur check passes on its texture)."""
    rng = np.random.default_rng(seed)
    base = np.array(PALETTE[CLASS_NAMES.index(label)], dtype=np.float32)
    pixels = np.clip(base + rng.normal(0, 25, (240, 320, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def calibrate_batch_norm(module: torch.nn.Module) -> None:
    """BatchNorm statistics of the colour photos, as a model trained on them would have: the
    learning loop keeps production's statistics (they come from its founding data)."""
    from allcare.ml.preprocess import to_model_input

    photos = [
        Image.open(io.BytesIO(colour_photo(label, 1000 + n)))
        for n in range(4)
        for label in CLASS_NAMES
    ]
    batch = torch.from_numpy(np.stack([to_model_input(photo) for photo in photos]))
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.reset_running_stats()
            layer.momentum = None
    module.train()
    with torch.no_grad():
        module(batch)
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.momentum = 0.1
    module.eval()


def mobilenet_checkpoint(path: Path, favour: str, seed: int = 0) -> Path:
    """A MobileNetV3-Large that answers ``favour`` for every photo: a production model that a
    few epochs of fine-tuning can beat (or, favouring ``mel``, one it cannot match on melanoma
    recall)."""
    torch.manual_seed(seed)
    module = build("mobilenet_v3_large")
    calibrate_batch_norm(module)
    with torch.no_grad():
        module.classifier[3].bias[CLASS_NAMES.index(favour)] += 5.0
    torch.save(
        {"model_state_dict": module.state_dict(), "architecture": "mobilenet_v3_large"}, path
    )
    return path


def add_case(
    client: TestClient, gp: TestClient, user_id: str, photo_for: Callable[[str], bytes]
) -> str:
    """The app's journey: a case id, a camera upload, a confirmed decision."""
    case_id = gp.post("/cases/next-id").json()["case_id"]
    photo = photo_for(case_id)
    response = client.post(
        "/check-image",
        params={"case_id": case_id},
        files={"file": ("photo.jpg", photo, "image/jpeg")},
        headers={"X-User-Id": user_id, "X-User-Role": "gp"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success", body
    path = f"{body['user_id']}/{body['image_id']}.jpg"
    logged = gp.post(
        "/cases",
        json={
            "case_id": case_id,
            "status": "Confirmed",
            "image_paths": [path],
            "predictions": body["predictions"][:3],
            "selected_prediction_index": 0,
        },
    )
    assert logged.status_code == 200, logged.text
    return case_id


def wait_for_run(admin: TestClient, timeout: float = 240.0) -> dict[str, object]:
    """Polls /admin/retrain/status until the run ends; returns the last status seen while it
    was training (or the final one when it ended between polls)."""
    deadline = time.monotonic() + timeout
    seen: dict[str, object] = {}
    while time.monotonic() < deadline:
        status = admin.get("/admin/retrain/status").json()["retrain_status"]
        if status["status"] != "training":
            return seen or status
        seen = status
        time.sleep(0.5)
    raise AssertionError(f"training did not finish in {timeout} s: {seen}")


def labelled_cases(
    client: TestClient,
    gp: TestClient,
    doctor: TestClient,
    user_id: str,
    holdout_share: float,
    *,
    train_per_class: int,
    train_classes: tuple[str, ...] = CLASS_NAMES,
    holdout_per_class: int = 1,
) -> dict[str, list[tuple[str, str]]]:
    """Cases labelled by a doctor, with a known number per class on each side of the frozen
    evaluation split (the split is fixed by the case id, so labels are chosen after it)."""
    wanted = {
        Split.TRAIN: dict.fromkeys(train_classes, train_per_class),
        Split.HOLDOUT: dict.fromkeys(CLASS_NAMES, holdout_per_class),
    }
    made: dict[str, list[tuple[str, str]]] = {Split.TRAIN: [], Split.HOLDOUT: []}
    seed = 0
    while any(any(counts.values()) for counts in wanted.values()):
        seed += 1
        choice: dict[str, str] = {}

        def photo_for(case_id: str, choice: dict[str, str] = choice, seed: int = seed) -> bytes:
            side = split_for(int(case_id), holdout_share)
            remaining = {k: v for k, v in wanted[side].items() if v}
            label = max(remaining, key=remaining.__getitem__) if remaining else "nv"
            choice.update(case_id=case_id, side=side, label=label)
            return colour_photo(label, seed)

        case_id = add_case(client, gp, user_id, photo_for)
        side, label = choice["side"], choice["label"]
        if not wanted[side].get(label):
            continue
        wanted[side][label] -= 1
        response = doctor.post(f"/cases/{case_id}/label", json={"correct_label": label})
        assert response.status_code == 200, response.text
        made[side].append((case_id, label))
        assert seed < 500, "could not fill both sides of the split"
    return made


TRAINING = {"epochs": 3, "batch_size": 8, "learning_rate": 0.001, "optimizer": "Adam"}


def start_clinic(
    make_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    folder: Path,
    favour: str,
    **overrides: object,
) -> Api:
    """A server whose production model is a MobileNetV3 favouring one class, with a GP, a doctor
    and an admin, and a short training configuration."""
    values: dict[str, object] = {
        "model_path": mobilenet_checkpoint(folder / f"{favour}.pt", favour),
        "inference_runtime": "torch",
        "retrain_auto": False,
        "promotion_min_eval_cases": 5,
        "promotion_min_eval_melanomas": 1,
        "retrain_min_steps": 0,
        "upload_rate_per_minute": 10_000,
        "training_threads": 2,
    } | overrides
    api = make_api(make_settings(**values))
    for user, role in (("gp1", "gp"), ("doc1", "doctor"), ("admin1", "admin")):
        api.add_user(user, role)
    assert api.as_user("admin1").post("/admin/training-config", json=TRAINING).status_code == 200
    return api


def predict(api: Api, label: str) -> dict[str, object]:
    response = api.client.post(
        "/check-image",
        params={"predict_only": "true"},
        files={"file": ("p.jpg", colour_photo(label, 999), "image/jpeg")},
        headers=api.headers("gp1"),
    )
    assert response.status_code == 200
    return response.json()


def colour_folder(root: Path) -> Path:
    """A folder laid out like ham10000-dev: 21 colour photos, 14 ``train`` and 7 ``val``, each
    its own lesion."""
    (root / "images").mkdir(parents=True)
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "dx", "split", "lesion_id", "mini"])
        for index, label in enumerate(CLASS_NAMES * 3):
            image_id = f"IMG_{index:04d}"
            (root / "images" / f"{image_id}.jpg").write_bytes(colour_photo(label, index))
            split = "val" if index >= 14 else "train"
            writer.writerow([image_id, label, split, f"L{index}", "1"])
    return root
