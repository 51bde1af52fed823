"""The model factory shared by inference and training (D17): only what both can serve."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torchvision import models

from allcare.ml.classes import ARCHITECTURES, NUM_CLASSES, PRETRAINED
from allcare.ml.preprocess import MEAN, STD

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


class EfficientNetLite0(nn.Module):
    """timm's ``tf_efficientnet_lite0`` with a 7-class head (dropout, then one Linear). Inputs
    arrive ImageNet-normalised; the first operation maps them to the [-1, 1] scale the
    pretrained weights expect, so the serving transform stays the one of every model."""

    backbone: Any  # timm's EfficientNet: its stages are attributes mypy cannot see
    input_scale: torch.Tensor
    input_shift: torch.Tensor

    def __init__(self, *, pretrained: bool) -> None:
        super().__init__()
        import timm

        from allcare.ml import pretrained as weights

        backbone: Any = timm.create_model(weights.TIMM_NAME, pretrained=False)
        if pretrained:
            weights.load_imagenet_weights(backbone)
        backbone.classifier = nn.Sequential(
            nn.Dropout(HEAD_DROPOUT), nn.Linear(backbone.num_features, NUM_CLASSES)
        )
        self.backbone = backbone
        mean = torch.tensor(MEAN.ravel()).reshape(1, 3, 1, 1)
        std = torch.tensor(STD.ravel()).reshape(1, 3, 1, 1)
        trained_mean = torch.tensor(weights.TRAINED_MEAN).reshape(1, 3, 1, 1)
        trained_std = torch.tensor(weights.TRAINED_STD).reshape(1, 3, 1, 1)
        self.register_buffer("input_scale", std / trained_std, persistent=False)
        self.register_buffer("input_shift", (mean - trained_mean) / trained_std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x * self.input_scale + self.input_shift)

    def early_layers(self) -> list[nn.Module]:
        """The stem and the first three block stages: generic edge and texture filters, which
        fine-tuning leaves as ImageNet taught them (they cost most of a backward pass)."""
        return [self.backbone.conv_stem, self.backbone.bn1, *self.backbone.blocks[:3]]


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
    "efficientnet_lite0": lambda: EfficientNetLite0(pretrained=False),
    "resnet50": _resnet50,
    "efficientnet_v2_m": _efficientnet_v2_m,
    "mobilenet_v3_large": _mobilenet_v3_large,
}
assert tuple(BUILDERS) == ARCHITECTURES, "ml/classes.py lists the architectures"


class UnknownArchitecture(ValueError):
    pass


def build(architecture: str, *, pretrained: bool = False, seed: int | None = None) -> nn.Module:
    """The architecture with random weights (drawn from ``seed`` when given), or for
    ``pretrained`` (EfficientNet-Lite0 only) with the ImageNet backbone and a new head: the
    start of a first model."""
    if seed is not None:
        torch.manual_seed(seed)
    if pretrained:
        if architecture not in PRETRAINED:
            raise UnknownArchitecture(
                f"No pretrained weights for {architecture!r}; pretrained: {', '.join(PRETRAINED)}"
            )
        return EfficientNetLite0(pretrained=True)
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
    if any(key.startswith("backbone.blocks.") for key in keys):
        return "efficientnet_lite0"
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


def early_layers(module: nn.Module) -> list[nn.Module]:
    """Layers a fine-tuning run keeps frozen (weights and BatchNorm statistics), if any."""
    return module.early_layers() if isinstance(module, EfficientNetLite0) else []


def strip_data_parallel_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoints saved from nn.DataParallel prefix every key with ``module.``."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module.") :]: value for key, value in state_dict.items()}
    return dict(state_dict)
