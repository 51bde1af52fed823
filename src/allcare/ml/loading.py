"""Turns a model file into a validated, ready-to-serve model (the only way models enter serving).

This module owns the sequence: hash the file once, identify it, export it to ONNX or reuse the
cached export (ml/onnx_export.py, in a child process: with the ONNX runtime the server process
never imports torch) or read it with torch (ml/model_file.py), open the runner
(ml/runners.py, ml/torch_runtime.py), and prove it with warm-up passes. Those modules are its
leaves and never call back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from allcare.ml.classes import NUM_CLASSES
from allcare.ml.model_source import ModelFormat, ModelLoadError, ModelSource, sha256_file
from allcare.ml.onnx_export import cached_or_exported
from allcare.ml.optional import needs_torch
from allcare.ml.preprocess import INPUT_SIZE
from allcare.ml.runners import OnnxRunner, Runner, softmax

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelOptions:
    runtime: str
    device: str
    threads: int
    fallback_cache_dir: Path
    trust_pickle: bool = False


@dataclass(frozen=True)
class LoadedModel:
    version: str
    source: ModelSource
    runner: Runner


def load_model(path: Path, options: ModelOptions, version: str | None = None) -> LoadedModel:
    """Load (converting to ONNX if asked), then prove the model with warm-up passes."""
    if not path.is_file():
        raise ModelLoadError(f"Model file {path} does not exist")
    sha = sha256_file(path)
    if path.suffix.lower() == ".onnx":
        source = ModelSource(path, sha, ModelFormat.ONNX, None)
        runner: Runner = OnnxRunner(path, options.device, options.threads)
    elif options.runtime == "onnx":
        onnx_path, described = cached_or_exported(
            path, sha, options.fallback_cache_dir, options.trust_pickle
        )
        source = ModelSource(path, sha, ModelFormat(described["format"]), described["architecture"])
        runner = OnnxRunner(onnx_path, options.device, options.threads)
    else:
        missing = needs_torch(f"INFERENCE_RUNTIME=torch (serving {path.name})")
        if missing:
            raise ModelLoadError(f"{missing}; or serve it with INFERENCE_RUNTIME=onnx")
        from allcare.ml.model_file import read_model
        from allcare.ml.torch_runtime import TorchRunner

        source, module = read_model(path, trust_pickle=options.trust_pickle, sha256=sha)
        runner = TorchRunner(module, options.device, options.threads)
    _warm_up(runner, path)
    loaded = LoadedModel(version or f"{path.stem}@{source.sha256[:12]}", source, runner)
    log.info(
        "Model %s loaded from %s (%s%s) on %s with %s",
        loaded.version,
        path,
        source.format.value,
        f", {source.architecture}" if source.architecture else "",
        runner.device,
        runner.runtime,
    )
    return loaded


def _warm_up(runner: Runner, path: Path) -> None:
    for batch in (1, 2):
        try:
            output = runner.run(np.zeros((batch, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32))
        except Exception as exc:
            raise ModelLoadError(
                f"{path} fails a forward pass on a {batch}x3x224x224 batch: {exc}"
            ) from exc
        logits = output.logits
        if output.features is not None and output.features.shape[0] != batch:
            raise ModelLoadError(f"{path} gives features of shape {output.features.shape}")
        if logits.shape != (batch, NUM_CLASSES):
            raise ModelLoadError(
                f"{path} outputs shape {tuple(logits.shape)} for a batch of {batch}; "
                f"expected ({batch}, {NUM_CLASSES}) for the 7 HAM10000 classes"
            )
        if not np.isfinite(logits).all():
            raise ModelLoadError(f"{path} outputs non-finite values on a blank image")


def predict(model: LoadedModel, inputs: list[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """Class probabilities of many model inputs, in batches (evaluation)."""
    rows = [
        softmax(model.runner.run(np.stack(inputs[i : i + batch_size])).logits)
        for i in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(rows) if rows else np.zeros((0, NUM_CLASSES))
