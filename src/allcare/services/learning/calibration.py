"""A retraining run's calibration photos: a seeded share of the clinic's training-side cases
that the run does not train on, so the temperature (ml/calibration.py) is fitted on photos the
candidate never saw and the evaluation set stays the gate's alone."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from allcare.ml.calibration import MIN_CALIBRATION_PHOTOS, TemperatureFit, calibrate
from allcare.ml.classes import CLASS_NAMES
from allcare.ml.preprocess import to_model_input
from allcare.services.labels.pool import LabelledImage


@dataclass(frozen=True)
class CalibrationSplit:
    train: list[LabelledImage]
    calibration: list[LabelledImage]


def split_for_calibration(
    samples: Sequence[LabelledImage], share: float, seed: int
) -> CalibrationSplit:
    """Whole cases go to one side; none are held back when the share would be too small."""
    cases = sorted({sample.case_id for sample in samples})
    random.Random(seed).shuffle(cases)  # noqa: S311 - sampling, not security
    held = set(cases[: round(len(cases) * share)])
    calibration = [sample for sample in samples if sample.case_id in held]
    if len(calibration) < MIN_CALIBRATION_PHOTOS or len(samples) - len(calibration) < 2:
        return CalibrationSplit(list(samples), [])
    return CalibrationSplit([s for s in samples if s.case_id not in held], calibration)


def calibrate_on(
    module: Any,
    calibration: Sequence[LabelledImage],
    load: Callable[[LabelledImage], Callable[[], Any]],
) -> dict[str, Any]:
    """Fit and fold the temperature into ``module``; the record says what was done, or why not."""
    if not calibration:
        return {
            "temperature": 1.0,
            "note": f"fewer than {MIN_CALIBRATION_PHOTOS} calibration photos: not calibrated",
        }
    inputs = [to_model_input(load(sample)().convert("RGB")) for sample in calibration]
    labels = np.asarray([CLASS_NAMES.index(sample.label) for sample in calibration])
    fitted: TemperatureFit | None = calibrate(module, inputs, labels)
    if fitted is None:
        return {"temperature": 1.0, "note": "the model's last layer is not its logits"}
    return fitted.as_dict() | {"cases": len({sample.case_id for sample in calibration})}
