"""The parts that need PyTorch: eager inference and the ONNX export with its equivalence check."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from allcare.ml.classes import NUM_CLASSES
from allcare.ml.model_source import ModelLoadError
from allcare.ml.preprocess import INPUT_SIZE
from allcare.ml.runners import FEATURES, LOGITS, ModelOutput

ONNX_OPSET = 17


def resolve_torch_device(requested: str, setting: str = "MODEL_DEVICE") -> str:
    """``auto`` prefers cuda, then mps, then cpu; an explicit device must exist. The one rule
    for serving (MODEL_DEVICE) and training (RETRAIN_DEVICE)."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if requested == "auto":
        return next(device for device, present in available.items() if present)
    if not available.get(requested, False):
        raise ModelLoadError(
            f"{setting}={requested}, but PyTorch finds no {requested} device here; "
            f"set {setting}=auto or cpu"
        )
    return requested


def first_output(output: object) -> torch.Tensor:
    """Models may return (logits, extras); the legacy loader took the first element too."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"model returned {type(output).__name__}, not a tensor")
    return output


class WithFeatures(nn.Module):
    """Answers (logits, features): the features are the input of the final classification
    layer (the penultimate layer), captured by a hook, so any eager model of the factory or of
    a test exposes them without knowing its structure."""

    def __init__(self, module: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.module = module
        self._captured: torch.Tensor | None = None
        head.register_forward_pre_hook(self._capture)

    def _capture(self, _head: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._captured = inputs[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = first_output(self.module(x))
        assert self._captured is not None
        return logits, torch.flatten(self._captured, 1)


def with_features(module: nn.Module) -> nn.Module:
    """The module wrapped to expose its features, or as it is when that is impossible
    (TorchScript files allow no hooks; a model without a final 7-way Linear has no such layer)."""
    if isinstance(module, (WithFeatures, torch.jit.ScriptModule)):
        return module
    heads = [
        layer
        for layer in module.modules()
        if isinstance(layer, nn.Linear) and layer.out_features == NUM_CLASSES
    ]
    return WithFeatures(module, heads[-1]) if heads else module


def split_output(output: object) -> ModelOutput:
    if (
        isinstance(output, tuple)
        and len(output) == 2
        and all(isinstance(part, torch.Tensor) for part in output)
    ):
        logits, features = output
        return ModelOutput(logits.float().cpu().numpy(), features.float().cpu().numpy())
    return ModelOutput(first_output(output).float().cpu().numpy())


class TorchRunner:
    runtime = "torch"

    def __init__(self, module: nn.Module, device: str, threads: int) -> None:
        self.device = resolve_torch_device(device)
        if self.device == "cpu":
            torch.set_num_threads(threads)
        self._module = with_features(module).to(self.device).eval()

    def run(self, batch: np.ndarray) -> ModelOutput:
        with torch.inference_mode():
            return split_output(self._module(torch.from_numpy(batch).to(self.device)))


def export_onnx(module: nn.Module, path: Path) -> None:
    """Writes ``path`` in place: callers that keep the file go through core/durable.py."""
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    exported = with_features(module).eval()
    outputs = [LOGITS, FEATURES] if isinstance(exported, WithFeatures) else [LOGITS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            exported,
            (example,),
            str(path),
            input_names=["input"],
            output_names=outputs,
            dynamic_axes={"input": {0: "batch"}} | {name: {0: "batch"} for name in outputs},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def torch_output(module: nn.Module, batch: np.ndarray) -> ModelOutput:
    with torch.inference_mode():
        return split_output(with_features(module).eval()(torch.from_numpy(batch)))
