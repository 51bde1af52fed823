"""Small real models built by the tests, saved in every accepted file format."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from allcare.ml.architectures import build
from allcare.ml.classes import NUM_CLASSES


class TinyClassifier(nn.Module):
    """A few thousand parameters, but a real image-dependent CNN with the 7-class head."""

    def __init__(self, seed: int = 0, favour: int | None = None) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, kernel_size=5, stride=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, NUM_CLASSES)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
            if favour is not None:
                self.head.bias[favour] += 30.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def save_torchscript(module: nn.Module, path: Path) -> Path:
    torch.jit.script(module.eval()).save(str(path))
    return path


def tiny_torchscript(path: Path, seed: int = 0, favour: int | None = None) -> Path:
    return save_torchscript(TinyClassifier(seed, favour), path)


def real_architecture(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build(name).eval()
