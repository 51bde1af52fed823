"""What the model says about a photo, as the app shows it: every class, most likely first."""

from __future__ import annotations

from dataclasses import dataclass

from allcare.ml.classes import CLASS_NAMES


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float


def ranked(probabilities: list[float]) -> tuple[Prediction, ...]:
    """All classes, highest confidence first: the app takes the first as the diagnosis."""
    pairs = sorted(zip(CLASS_NAMES, probabilities, strict=True), key=lambda p: -p[1])
    return tuple(Prediction(label, confidence) for label, confidence in pairs)
