"""Classification metrics for the promotion gate: accuracy, balanced accuracy, per-class recall
(melanoma's above all) and calibration (expected calibration error)."""

from __future__ import annotations

from typing import Any

import numpy as np

from allcare.ml.classes import CLASS_NAMES

MEL = CLASS_NAMES.index("mel")
ECE_BINS = 15


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean gap between confidence and accuracy over 15 equal-width confidence bins, weighted
    by how many predictions fall in each (Guo et al., 2017)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, ECE_BINS - 1)
    error = 0.0
    for b in range(ECE_BINS):
        members = bins == b
        if members.any():
            error += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(error)


def evaluate(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """``probabilities`` (N, 7) in CLASS_NAMES order, ``labels`` (N,) class indices. Recall is
    None for a class absent from the labels; balanced accuracy averages the present ones."""
    if len(labels) == 0:
        return {"n": 0}
    predicted = probabilities.argmax(axis=1)
    recall: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    for index, name in enumerate(CLASS_NAMES):
        members = labels == index
        counts[name] = int(members.sum())
        recall[name] = float((predicted[members] == index).mean()) if members.any() else None
    present = [value for value in recall.values() if value is not None]
    return {
        "n": len(labels),
        "accuracy": float((predicted == labels).mean()),
        "balanced_accuracy": float(np.mean(present)),
        "mel_recall": recall["mel"],
        "per_class_recall": recall,
        "class_counts": counts,
        "ece": expected_calibration_error(probabilities, labels),
    }
