"""Reads a PyTorch model file in any of the accepted formats into a torch module."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from allcare.ml.architectures import (
    UnknownArchitecture,
    build,
    detect_architecture,
    strip_data_parallel_prefix,
)
from allcare.ml.classes import CLASS_NAMES
from allcare.ml.model_source import ModelFormat, ModelLoadError, ModelSource, sha256_file
from allcare.ml.preprocess import INPUT_SIZE, MEAN, RESIZE_SHORTER, STD

# What services hold of a model while training it, without importing torch themselves.
Module = nn.Module


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") for name in archive.namelist())


def read_model(
    path: Path, *, trust_pickle: bool = False, sha256: str | None = None
) -> tuple[ModelSource, nn.Module]:
    """The module and what it is (``sha256`` when the caller already hashed the file).
    Checkpoints load with ``weights_only`` unless ``trust_pickle``: a pickle can run arbitrary
    code, so only trusted files may use it."""
    sha = sha256 or sha256_file(path)
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream
                module = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as exc:
            raise ModelLoadError(f"{path} is a broken TorchScript archive: {exc}") from exc
        return ModelSource(path, sha, ModelFormat.TORCHSCRIPT, None), module.eval()
    payload = _torch_load(path, trust_pickle)
    if isinstance(payload, dict) and ("model_state_dict" in payload or "state_dict" in payload):
        state = payload.get("model_state_dict") or payload.get("state_dict")
        return _from_state_dict(
            path, sha, ModelFormat.CHECKPOINT, state, payload.get("architecture")
        )
    if (
        isinstance(payload, dict)
        and payload
        and all(isinstance(v, torch.Tensor) for v in payload.values())
    ):
        return _from_state_dict(path, sha, ModelFormat.STATE_DICT, payload, None)
    raise ModelLoadError(
        f"{path} is neither TorchScript, a checkpoint dict with 'model_state_dict', a bare "
        "state_dict nor ONNX; pickled whole modules are not accepted (export to TorchScript)"
    )


def _torch_load(path: Path, trust_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"{path} holds Python objects beyond tensors; if you trust the file, set "
            f"MODEL_TRUST_PICKLE=true to load it anyway ({exc})"
        ) from exc
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable PyTorch file: {exc!r}") from exc


def _from_state_dict(
    path: Path, sha: str, fmt: ModelFormat, state: Any, architecture: Any
) -> tuple[ModelSource, nn.Module]:
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: the state_dict is not a mapping of tensors")
    state = strip_data_parallel_prefix(state)
    try:
        name = architecture if isinstance(architecture, str) else detect_architecture(state)
        module = build(name)
        module.load_state_dict(state, strict=True)
    except UnknownArchitecture as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc
    except RuntimeError as exc:
        raise ModelLoadError(
            f"{path}: weights do not fit {name} with a 7-class head: {str(exc)[:500]}"
        ) from exc
    return ModelSource(path, sha, fmt, name), module.eval()


def checkpoint(module: torch.nn.Module, architecture: str, version_id: str) -> dict[str, Any]:
    """The candidate's file: weights, architecture and the preprocessing it was trained with."""
    return {
        "model_state_dict": module.state_dict(),
        "architecture": architecture,
        "classes": list(CLASS_NAMES),
        "preprocess": {
            "resize_shorter": RESIZE_SHORTER,
            "center_crop": INPUT_SIZE,
            "mean": MEAN.ravel().tolist(),
            "std": STD.ravel().tolist(),
        },
        "version_id": version_id,
    }


def save_checkpoint(
    module: torch.nn.Module, architecture: str, version_id: str, path: Path
) -> None:
    torch.save(checkpoint(module, architecture, version_id), path)
