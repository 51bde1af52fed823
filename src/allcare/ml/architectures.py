"""The model factory shared by inference and training (D17): only what both can serve."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn
from torchvision import models

from allcare.ml.classes import ARCHITECTURES, NUM_CLASSES

HEAD_DROPOUT = 0.3


def _resnet50() -> nn.Module:
    model = models.resnet50(weights=None)
    model.fc = nn.Sequential(nn.Dropout(HEAD_DROPOUT), nn.Linear(2048, NUM_CLASSES))
    return model


def _efficientnet_v2_m() -> nn.Module:
    model = models.efficientnet_v2_m(weights=None)
    model.classifier = nn.Sequential(
        nn.Dropout(HEAD_DROPOUT, inplace=True), nn.Linear(1280, NUM_CLASSES)
    )
    return model


def _mobilenet_v3_large() -> nn.Module:
    """The legacy trainer's small model (classifier keys ``classifier.0`` and ``classifier.3``):
    about 20 times cheaper than ResNet50, for CPU-only clinics and quick experiments."""
    model = models.mobilenet_v3_large(weights=None)
    model.classifier = nn.Sequential(
        nn.Linear(960, 1280),
        nn.Hardswish(inplace=True),
        nn.Dropout(HEAD_DROPOUT, inplace=True),
        nn.Linear(1280, NUM_CLASSES),
    )
    return model


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "resnet50": _resnet50,
    "efficientnet_v2_m": _efficientnet_v2_m,
    "mobilenet_v3_large": _mobilenet_v3_large,
}
assert tuple(BUILDERS) == ARCHITECTURES, "ml/classes.py lists the architectures"


class UnknownArchitecture(ValueError):
    pass


def build(architecture: str) -> nn.Module:
    try:
        return BUILDERS[architecture]()
    except KeyError as exc:
        raise UnknownArchitecture(
            f"Unknown architecture {architecture!r}; supported: {', '.join(ARCHITECTURES)}"
        ) from exc


def detect_architecture(state_dict: Mapping[str, torch.Tensor]) -> str:
    """From parameter names, as the legacy loaders did: MobileNetV3's four-layer head, then
    EfficientNet blocks, then ResNet layers."""
    keys = list(state_dict)
    if any(key.startswith("classifier.3.") for key in keys):
        return "mobilenet_v3_large"
    if any("features.0.0" in key for key in keys):
        return "efficientnet_v2_m"
    if any("layer1" in key for key in keys):
        return "resnet50"
    raise UnknownArchitecture(
        "Cannot tell the architecture from the state_dict keys; save a checkpoint dict with "
        "'architecture' set to one of: " + ", ".join(ARCHITECTURES)
    )


def strip_data_parallel_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoints saved from nn.DataParallel prefix every key with ``module.``."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module.") :]: value for key, value in state_dict.items()}
    return dict(state_dict)
