"""Forward passes on a batch behind one small interface; the ONNX Runtime side needs no torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from allcare.ml.model_source import ModelLoadError

LOGITS = "logits"
FEATURES = "features"


@dataclass(frozen=True)
class ModelOutput:
    """Logits (N, classes) and, when the model exposes them, the penultimate-layer features
    (N, D) that active learning uses to pick diverse cases."""

    logits: np.ndarray
    features: np.ndarray | None = None


class Runner(Protocol):
    runtime: str
    device: str

    def run(self, batch: np.ndarray) -> ModelOutput:
        """float32 (N, 3, 224, 224) -> logits and features."""
        ...


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def onnx_device(requested: str) -> str:
    """``auto`` takes CUDA when ONNX Runtime has it; an explicit device must exist."""
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if requested == "cuda" and not cuda:
        raise ModelLoadError(
            "MODEL_DEVICE=cuda, but this ONNX Runtime has no CUDA provider; install "
            "onnxruntime-gpu, or set INFERENCE_RUNTIME=torch or MODEL_DEVICE=auto"
        )
    if requested == "mps":
        raise ModelLoadError(
            "ONNX Runtime cannot run on mps; set INFERENCE_RUNTIME=torch for Apple GPUs"
        )
    return "cuda" if requested in ("auto", "cuda") and cuda else "cpu"


class OnnxRunner:
    runtime = "onnx"

    def __init__(self, path: Path, device: str, threads: int) -> None:
        self.device = onnx_device(device)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning workers would steal the cores the decode threads need between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if self.device == "cuda":
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:
            raise ModelLoadError(f"ONNX Runtime cannot load {path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        names = [output.name for output in self._session.get_outputs()]
        # Files exported by this server name their outputs; any other ONNX file: first output.
        self._outputs = [LOGITS, FEATURES] if names[:2] == [LOGITS, FEATURES] else names[:1]

    def run(self, batch: np.ndarray) -> ModelOutput:
        results = self._session.run(self._outputs, {self._input: batch})
        logits = np.asarray(results[0], dtype=np.float32)
        features = np.asarray(results[1], dtype=np.float32) if len(results) > 1 else None
        return ModelOutput(logits, features)
