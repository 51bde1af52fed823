from pathlib import Path

import numpy as np
import pytest
import torch

from allcare.ml.loading import ModelOptions, load_model
from allcare.ml.model_source import ModelFormat, ModelLoadError
from allcare.ml.runners import softmax
from allcare.ml.torch_runtime import export_onnx, resolve_torch_device
from tests.models import TinyClassifier, real_architecture, save_torchscript, tiny_torchscript

SAMPLE = np.random.default_rng(1).standard_normal((3, 3, 224, 224)).astype(np.float32)


def options(tmp_path: Path, runtime: str = "torch") -> ModelOptions:
    return ModelOptions(runtime=runtime, device="cpu", threads=2, fallback_cache_dir=tmp_path / "c")


def probabilities(model) -> np.ndarray:
    return softmax(model.runner.run(SAMPLE).logits)


@pytest.fixture(scope="module")
def resnet_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real-size resnet50 saved in every accepted format."""
    folder = tmp_path_factory.mktemp("resnet")
    module = real_architecture("resnet50")
    state = module.state_dict()
    files = {
        "checkpoint": folder / "checkpoint.pt",
        "state_dict": folder / "bare.pth",
        "data_parallel": folder / "dp.pth",
        "torchscript": folder / "scripted.pt",
        "onnx": folder / "model.onnx",
    }
    torch.save({"model_state_dict": state, "architecture": "resnet50"}, files["checkpoint"])
    torch.save(state, files["state_dict"])
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, files["data_parallel"])
    save_torchscript(module, files["torchscript"])
    export_onnx(module, files["onnx"])
    with torch.inference_mode():
        files["expected"] = softmax(module(torch.from_numpy(SAMPLE)).numpy())  # type: ignore[assignment]
    return files


@pytest.mark.parametrize(
    "kind", ["checkpoint", "state_dict", "data_parallel", "torchscript", "onnx"]
)
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_every_format_gives_the_same_probabilities(
    resnet_files: dict, tmp_path: Path, kind: str, runtime: str
) -> None:
    model = load_model(resnet_files[kind], options(tmp_path, runtime))
    got = probabilities(model)
    np.testing.assert_allclose(got, resnet_files["expected"], atol=1e-4)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    if kind in ("checkpoint", "state_dict", "data_parallel"):
        assert model.source.architecture == "resnet50"
    expected_runtime = "onnx" if kind == "onnx" else runtime
    assert model.runner.runtime == expected_runtime
    assert model.version.endswith(model.source.sha256[:12])


def test_real_efficientnet_v2_m_loads_with_both_runtimes(tmp_path: Path) -> None:
    module = real_architecture("efficientnet_v2_m")
    path = tmp_path / "effnet.pt"
    torch.save(module.state_dict(), path)  # bare: the architecture is detected from the keys
    eager = load_model(path, options(tmp_path, "torch"))
    onnx = load_model(path, options(tmp_path, "onnx"))
    assert eager.source.architecture == "efficientnet_v2_m"
    np.testing.assert_allclose(probabilities(eager), probabilities(onnx), atol=1e-4)


def test_onnx_export_is_cached_next_to_the_checkpoint_by_hash(tmp_path: Path) -> None:
    path = tiny_torchscript(tmp_path / "tiny.pt")
    first = load_model(path, options(tmp_path, "onnx"))
    [cached] = tmp_path.glob(".tiny.pt.*.onnx")
    assert first.source.sha256[:16] in cached.name
    assert first.source.format == ModelFormat.TORCHSCRIPT
    stamp = cached.stat().st_mtime_ns
    load_model(path, options(tmp_path, "onnx"))
    assert cached.stat().st_mtime_ns == stamp  # reused, not exported again


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a readable PyTorch file"),
        (b"this is not a model", "not a readable PyTorch file"),
    ],
)
def test_broken_files_are_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message):
        load_model(path, options(tmp_path))


def test_missing_file_wrong_head_and_unknown_architecture(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope.pt", options(tmp_path))

    wrong_head = TinyClassifier()
    wrong_head.head = torch.nn.Linear(8, 5)
    with pytest.raises(ModelLoadError, match=r"expected \(1, 7\)"):
        load_model(save_torchscript(wrong_head, tmp_path / "five.pt"), options(tmp_path))

    path = tmp_path / "yolo.pt"
    torch.save({"model_state_dict": {"x": torch.zeros(1)}, "architecture": "yolo"}, path)
    with pytest.raises(ModelLoadError, match="Unknown architecture"):
        load_model(path, options(tmp_path))

    path = tmp_path / "mismatch.pt"
    torch.save({"model_state_dict": {"layer1.weight": torch.zeros(1)}}, path)
    with pytest.raises(ModelLoadError, match="do not fit resnet50"):
        load_model(path, options(tmp_path))

    broken_onnx = tmp_path / "broken.onnx"
    broken_onnx.write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="ONNX Runtime cannot load"):
        load_model(broken_onnx, options(tmp_path))


def test_pickled_modules_need_explicit_trust(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save(
        {
            "model_state_dict": real_architecture("resnet50").state_dict(),
            "optimizer": object.__new__(TinyClassifier),
        },
        path,
    )
    with pytest.raises(ModelLoadError, match="MODEL_TRUST_PICKLE"):
        load_model(path, options(tmp_path))
    trusted = ModelOptions("torch", "cpu", 2, tmp_path / "c", trust_pickle=True)
    assert load_model(path, trusted).source.format == ModelFormat.CHECKPOINT


def test_the_server_process_never_imports_torch_with_the_onnx_runtime(tmp_path: Path) -> None:
    """Importing torch costs ~550 MB of resident memory; ONNX serving must not pay it."""
    import subprocess
    import sys

    path = tiny_torchscript(tmp_path / "tiny.pt")
    code = (
        "import sys; from pathlib import Path;"
        "from allcare.ml.loading import ModelOptions, load_model;"
        f"load_model(Path({str(path)!r}), ModelOptions('onnx', 'cpu', 1, Path({str(tmp_path)!r})));"
        "import allcare.api.app;"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_a_missing_device_is_a_clear_error_not_a_silent_fallback(
    tmp_path: Path, runtime: str
) -> None:
    path = tiny_torchscript(tmp_path / "tiny.pt")
    wanted = ModelOptions(runtime, "cuda", 2, tmp_path / "c")
    with pytest.raises(ModelLoadError, match="MODEL_DEVICE=cuda"):
        load_model(path, wanted)
    assert load_model(path, ModelOptions(runtime, "auto", 2, tmp_path / "c")).runner.device == "cpu"


def test_mobilenet_v3_large_is_detected_before_efficientnet(tmp_path: Path) -> None:
    """Both have ``features.0.0`` keys; MobileNetV3's head has a ``classifier.3`` layer."""
    path = tmp_path / "mobilenet.pth"
    torch.save(real_architecture("mobilenet_v3_large").state_dict(), path)
    model = load_model(path, options(tmp_path, "torch"))
    assert model.source.architecture == "mobilenet_v3_large"
    assert model.runner.run(SAMPLE).features.shape == (3, 1280)


def test_auto_prefers_an_apple_gpu_to_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """One rule for serving and training: auto is cuda, then mps, then cpu."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_torch_device("auto", "RETRAIN_DEVICE") == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_torch_device("auto", "RETRAIN_DEVICE") == "cpu"
    with pytest.raises(ModelLoadError, match="RETRAIN_DEVICE=mps, but PyTorch finds no mps"):
        resolve_torch_device("mps", "RETRAIN_DEVICE")
