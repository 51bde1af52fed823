"""Which architecture a run trains, and from which model it starts.

Only architectures the inference side can also serve are offered (D17). Fine-tuning starts from
production; another architecture starts from its newest usable version. Training from scratch is
`allcare train`'s job, not the loop's.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from allcare.core.config import Settings
from allcare.ml.classes import ARCHITECTURES, architecture_id
from allcare.services.errors import InvalidInput
from allcare.services.learning import config as training_config
from allcare.services.models.registry import Pointer, Status, pointer
from allcare.store.models import ModelVersion

LABELS = {
    "efficientnet_lite0": "EfficientNet-Lite0 (ImageNet-pretrained)",
    "efficientnet_v2_m": "EfficientNetV2-M",
    "resnet50": "ResNet50",
    "mobilenet_v3_large": "MobileNetV3 Large",
}


def canonical_architecture(name: str) -> str:
    key = architecture_id(name)
    if key is None:
        raise InvalidInput(f"Unsupported architecture: {name}")
    return key


@dataclass(frozen=True)
class ArchitectureOption:
    id: str
    label: str
    available: bool
    reason: str | None


@dataclass(frozen=True)
class ArchitectureChoice:
    default_architecture: str
    architectures: list[ArchitectureOption]


def architectures(default: str) -> ArchitectureChoice:
    """Only what the inference side can also serve (D17)."""
    listed = [ArchitectureOption(a, LABELS.get(a, a), True, None) for a in ARCHITECTURES]
    listed.append(
        ArchitectureOption(
            "yolo",
            "YOLO",
            False,
            "AllCare Server cannot serve YOLO models, so it does not train them",
        )
    )
    return ArchitectureChoice(default, listed)


def base_model(session: Session, requested: str | None) -> ModelVersion:
    """Runs start from production; another architecture starts from its newest usable
    version. Training from scratch is `allcare train`'s job, not the loop's."""
    production_id = pointer(session, Pointer.PRODUCTION)
    production = session.get(ModelVersion, production_id) if production_id else None
    wanted = canonical_architecture(requested) if requested else None
    if production is not None and wanted in (None, production.architecture):
        if production.architecture not in ARCHITECTURES:
            raise InvalidInput(
                f"The production model {production.id} is a TorchScript or ONNX file and "
                "cannot be fine-tuned; promote a checkpoint of "
                f"{', '.join(ARCHITECTURES)} (e.g. one made by `allcare train`)"
            )
        return production
    if wanted is None:
        raise InvalidInput(
            "No production model to fine-tune: train a first one with `allcare train`"
        )
    base = session.scalar(
        select(ModelVersion)
        .where(
            ModelVersion.architecture == wanted,
            ModelVersion.status.in_(
                [Status.PRODUCTION, Status.ARCHIVED, Status.EVALUATING, Status.REJECTED]
            ),
            ModelVersion.file_key.is_not(None),
        )
        .order_by(ModelVersion.created_at.desc())
        .limit(1)
    )
    if base is None:
        raise InvalidInput(
            f"No {wanted} model to start from: train one with `allcare train "
            f"--architecture {wanted}`"
        )
    return base


def default_architecture(session: Session, settings: Settings) -> str:
    """What fine-tuning would use: production's architecture, else the configured one."""
    production = pointer(session, Pointer.PRODUCTION)
    version = session.get(ModelVersion, production) if production else None
    if version is not None and version.architecture:
        return version.architecture
    config = training_config.current(session, settings)
    configured = str(config.get("architecture") or settings.al_default_architecture)
    return canonical_architecture(configured)
