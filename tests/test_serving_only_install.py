"""The serving-only install (pyproject's base dependencies, no [train] extra) serves ONNX files
and PyTorch files exported elsewhere, and every part that needs PyTorch refuses with the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from allcare.ml.model_source import sha256_file
from allcare.ml.onnx_export import cached_or_exported
from tests.models import tiny_torchscript
from tests.no_torch import run_cli, run_python, without_torch
from tests.photos import sharp_photo

PASSWORD = "serving-only-password"
STDIN = ("--password-stdin",)
JOURNEY = """
import json, sys
from fastapi.testclient import TestClient
from allcare.api.app import create_app

try:
    import torch  # noqa: F401
    sys.exit("torch was importable")
except ModuleNotFoundError:
    pass
try:
    with TestClient(create_app()) as client:
        token = client.post(
            "/auth/login", json={"username": "admin1", "password": sys.argv[1]}
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        photo = open(sys.argv[2], "rb").read()
        checked = client.post(
            "/check-image", params={"predict_only": "true"}, headers=auth,
            files={"file": ("lesion.jpg", photo, "image/jpeg")},
        )
        trigger = client.post("/admin/retrain/trigger", json={"force": True}, headers=auth)
        print(json.dumps({
            "check": [checked.status_code, checked.json()],
            "trigger": [trigger.status_code, trigger.json()],
            "torch_loaded": "torch" in sys.modules,
        }))
except Exception as exc:
    print(json.dumps({"start_error": str(exc)}))
"""


def _journey(env: dict[str, str], photo: Path) -> dict[str, object]:
    done = run_python(JOURNEY, env, PASSWORD, str(photo))
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_serving_without_torch(tmp_path: Path) -> None:
    exported_here = tiny_torchscript(tmp_path / "exported.pt", seed=1)
    cached_or_exported(exported_here, sha256_file(exported_here), tmp_path / "cache", False)
    onnx = tmp_path / "model.onnx"
    shutil.copy(next(tmp_path.glob(".exported.pt.*.onnx")), onnx)
    never_exported = tiny_torchscript(tmp_path / "fresh.pt", seed=2)
    photo = tmp_path / "lesion.jpg"
    photo.write_bytes(sharp_photo())
    settings = {
        "STORAGE_ROOT": str(tmp_path / "storage"),
        "JWT_SECRET_KEY": "s" * 48,
        "INFERENCE_RUNTIME": "onnx",
        "RETRAIN_AUTO": "false",
    }
    env = without_torch(tmp_path / "site", settings)
    added = run_cli(env, "users", "add", "admin1", "--role", "admin", *STDIN, stdin=PASSWORD)
    assert added.returncode == 0, added.stderr

    for model in (onnx, exported_here):  # an ONNX file; a .pt whose export came along
        answer = _journey(env | {"MODEL_PATH": str(model)}, photo)
        assert "check" in answer, answer
        status, body = answer["check"]  # type: ignore[misc]
        assert status == 200, body
        assert len(body["predictions"]) == 7
        assert answer["torch_loaded"] is False
        status, body = answer["trigger"]  # type: ignore[misc]
        assert status == 503
        assert "Retraining needs PyTorch" in body["detail"]
        assert "[train] extra" in body["detail"]

    refused = _journey(env | {"MODEL_PATH": str(never_exported)}, photo)
    assert "fresh.pt" in refused["start_error"]  # type: ignore[operator]
    assert "[train] extra" in refused["start_error"]  # type: ignore[operator]
    assert "from a machine that has PyTorch" in refused["start_error"]  # type: ignore[operator]

    torch_runtime = _journey(
        env | {"MODEL_PATH": str(exported_here), "INFERENCE_RUNTIME": "torch"}, photo
    )
    assert "INFERENCE_RUNTIME=onnx" in torch_runtime["start_error"]  # type: ignore[operator]

    for command in (
        ["train", str(tmp_path)],
        ["export-model", "v1", "--format", "onnx", "--out", "x"],
    ):
        done = run_cli(env, *command)
        assert done.returncode == 1, done.stderr
        assert "needs PyTorch" in done.stderr
        assert "[train] extra" in done.stderr
