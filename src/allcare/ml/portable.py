"""A model as TorchScript or ONNX, and how far the export's probabilities are from the source's.

The export is loaded back the way the server loads models (ml/loading.py) and compared on random
images, so an export that would serve different numbers is caught before anyone uses it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn

from allcare.ml.loading import ModelOptions, load_model
from allcare.ml.preprocess import INPUT_SIZE
from allcare.ml.runners import softmax
from allcare.ml.torch_runtime import export_onnx, torch_output

ExportFormat = Literal["torchscript", "onnx"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)


def export_module(module: nn.Module, fmt: ExportFormat, path: Path) -> None:
    module.eval()
    if fmt == "onnx":
        export_onnx(module, path)
        return
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream
        torch.jit.trace(module, example).save(str(path))


def export_difference(
    module: nn.Module, exported: Path, fmt: ExportFormat, cache_dir: Path
) -> float:
    """The largest difference in any probability on four random images."""
    sample = np.random.default_rng(0).standard_normal((4, 3, INPUT_SIZE, INPUT_SIZE))
    sample = sample.astype(np.float32)
    runtime = "onnx" if fmt == "onnx" else "torch"
    loaded = load_model(exported, ModelOptions(runtime, "cpu", 2, cache_dir), f"export-{fmt}")
    got = softmax(loaded.runner.run(sample).logits)
    expected = softmax(torch_output(module, sample).logits)
    return float(np.abs(got - expected).max())
