"""The parts that need PyTorch: eager inference and the ONNX export with its equivalence check."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from allcare.ml.model_source import ModelLoadError
from allcare.ml.preprocess import INPUT_SIZE
from allcare.ml.runners import softmax

ONNX_OPSET = 17


def resolve_torch_device(requested: str) -> str:
    """``auto`` prefers cuda, then mps, then cpu; an explicit device must exist."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if requested == "auto":
        return next(device for device, present in available.items() if present)
    if not available.get(requested, False):
        raise ModelLoadError(
            f"MODEL_DEVICE={requested}, but PyTorch finds no {requested} device here; "
            "set MODEL_DEVICE=auto or cpu"
        )
    return requested


def first_output(output: object) -> torch.Tensor:
    """Models may return (logits, extras); the legacy loader took the first element too."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"model returned {type(output).__name__}, not a tensor")
    return output


class TorchRunner:
    runtime = "torch"

    def __init__(self, module: nn.Module, device: str, threads: int) -> None:
        self.device = resolve_torch_device(device)
        if self.device == "cpu":
            torch.set_num_threads(threads)
        self._module = module.to(self.device).eval()

    def run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            output = first_output(self._module(torch.from_numpy(batch).to(self.device)))
        return output.float().cpu().numpy()


def export_onnx(module: nn.Module, target: Path) -> None:
    """Written to a temp file and renamed, so a crash never leaves a half file under the name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".onnx.partial")
    os.close(fd)
    try:
        example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                temp_name,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def torch_probabilities(module: nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return softmax(first_output(module(torch.from_numpy(batch))).float().numpy())
