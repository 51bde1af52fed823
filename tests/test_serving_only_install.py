"""The serving-only install (pyproject's base dependencies, no [train] extra) serves ONNX files
and PyTorch files exported elsewhere, and every part that needs PyTorch refuses with the fix."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from allcare.core.config import Settings
from allcare.ml.model_source import sha256_file
from allcare.ml.onnx_export import cached_or_exported
from tests.conftest import Api
from tests.models import tiny_torchscript
from tests.no_torch import run_cli, run_python, without_torch
from tests.photos import sharp_photo
from tests.s3_server import S3Server, bucket_objects

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


@pytest.mark.s3
def test_a_replica_without_torch_serves_a_pt_model_exported_by_another_machine(
    make_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    bucket_url: str,
    s3_environment: S3Server,
    tmp_path: Path,
) -> None:
    """The machine with PyTorch that registers (or trains) a .pt model publishes its ONNX
    export beside it in the bucket; a serving-only replica fetches both and serves."""
    settings = make_settings(
        model_path=tiny_torchscript(tmp_path / "trained.pt", seed=3),
        blob_store_url=bucket_url,
        inference_runtime="onnx",
    )
    with_torch = make_api(settings)
    version = with_torch.client.get("/health").json()["model"]["version"]
    folder = f"models/{version}/"
    names = [key[len(folder) :] for key in bucket_objects(s3_environment, bucket_url, folder)]
    assert "model.pt" in names
    assert any(name.startswith(".model.pt.") and name.endswith(".onnx") for name in names)
    assert any(name.endswith(".onnx.json") for name in names)

    env = without_torch(
        tmp_path / "site",
        s3_environment.environment()
        | {
            "STORAGE_ROOT": str(tmp_path / "replica"),
            "DATABASE_URL": settings.sqlalchemy_url,
            "BLOB_STORE_URL": bucket_url,
            "JWT_SECRET_KEY": "s" * 48,
            "INFERENCE_RUNTIME": "onnx",
            "RETRAIN_AUTO": "false",
        },
    )
    added = run_cli(env, "users", "add", "admin1", "--role", "admin", *STDIN, stdin=PASSWORD)
    assert added.returncode == 0, added.stderr
    photo = tmp_path / "lesion.jpg"
    photo.write_bytes(sharp_photo())
    answer = _journey(env, photo)
    assert "check" in answer, answer
    status, body = answer["check"]  # type: ignore[misc]
    assert status == 200, body
    assert answer["torch_loaded"] is False
