"""Temperature scaling: one number that makes a trained model's confidences honest again.

A short fine-tuning run (and a melanoma-weighted loss) leaves a model over- or under-confident;
dividing its logits by a temperature fitted on photos it did not train on fixes that without
changing any prediction's top class, so balanced accuracy and melanoma sensitivity stay what
training made them and only calibration moves. The temperature is folded into the classifier's
last linear layer, so the saved model is the same architecture and serves like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from allcare.ml.torch_runtime import first_output

# Below this many photos one fitted number is mostly noise: the run keeps temperature 1.
MIN_CALIBRATION_PHOTOS = 30
# Log-spaced candidates: a grid is exact enough for one parameter and cannot diverge.
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 121))


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    photos: int
    nll_before: float
    nll_after: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "temperature": round(self.temperature, 4),
            "photos": self.photos,
            "nll_before": round(self.nll_before, 4),
            "nll_after": round(self.nll_after, 4),
        }


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    log_probabilities = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> TemperatureFit:
    """The grid temperature with the lowest negative log-likelihood on these photos."""
    losses = [_nll(logits, labels, float(t)) for t in TEMPERATURES]
    best = int(np.argmin(losses))
    return TemperatureFit(
        temperature=float(TEMPERATURES[best]),
        photos=len(labels),
        nll_before=_nll(logits, labels, 1.0),
        nll_after=losses[best],
    )


@torch.no_grad()
def logits_of(module: nn.Module, inputs: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
    module.eval()
    rows = [
        first_output(module(torch.from_numpy(np.stack(inputs[start : start + batch_size]))))
        for start in range(0, len(inputs), batch_size)
    ]
    return torch.cat(rows).numpy().astype(np.float64)


@torch.no_grad()
def fold_temperature(module: nn.Module, temperature: float, probe: np.ndarray) -> bool:
    """Divide the last linear layer by ``temperature`` when that layer's output is the logits
    (checked on ``probe``, model inputs); False, and the module as it was, otherwise."""
    linears = [layer for layer in module.modules() if isinstance(layer, nn.Linear)]
    if not linears or temperature == 1.0:
        return temperature == 1.0
    head = linears[-1]
    before = logits_of(module, [probe])
    head.weight.div_(temperature)
    if head.bias is not None:
        head.bias.div_(temperature)
    after = logits_of(module, [probe])
    if np.allclose(after, before / temperature, rtol=1e-4, atol=1e-5):
        return True
    head.weight.mul_(temperature)
    if head.bias is not None:
        head.bias.mul_(temperature)
    return False


def calibrate(
    module: nn.Module, inputs: Sequence[np.ndarray], labels: np.ndarray
) -> TemperatureFit | None:
    """Fit on these photos (model inputs) and fold into ``module``; None when the module's last
    linear layer is not its logits (the module is left as it was)."""
    fitted = fit_temperature(logits_of(module, inputs), labels)
    return fitted if fold_temperature(module, fitted.temperature, inputs[0]) else None
