"""Forward passes on a batch behind one small interface; the ONNX Runtime side needs no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

from allcare.ml.model_source import ModelLoadError


class Runner(Protocol):
    runtime: str
    device: str

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, 224, 224) -> logits (N, classes)."""
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
        self._session = ort.InferenceSession(str(path), options, providers=providers)
        self._input = self._session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._input: batch})[0], dtype=np.float32)
