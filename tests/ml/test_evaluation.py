import numpy as np
import pytest

from allcare.ml.evaluation import evaluate, expected_calibration_error


def onehot(indices: list[int], confidence: float) -> np.ndarray:
    rows = np.full((len(indices), 7), (1 - confidence) / 6)
    rows[np.arange(len(indices)), indices] = confidence
    return rows


def test_metrics_by_hand() -> None:
    # four mel (index 4), two right; two nv (5), both right; one bcc (1), wrong
    labels = np.array([4, 4, 4, 4, 5, 5, 1])
    predicted = [4, 4, 5, 5, 5, 5, 5]
    result = evaluate(onehot(predicted, 0.9), labels)
    assert result["n"] == 7
    assert result["accuracy"] == pytest.approx(4 / 7)
    assert result["mel_recall"] == pytest.approx(0.5)
    assert result["per_class_recall"]["nv"] == 1.0
    assert result["per_class_recall"]["bcc"] == 0.0
    assert result["per_class_recall"]["df"] is None
    assert result["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert result["class_counts"]["mel"] == 4


def test_expected_calibration_error() -> None:
    labels = np.array([0, 0, 0, 0])
    confident_right = onehot([0, 0, 0, 0], 0.95)
    assert expected_calibration_error(confident_right, labels) == pytest.approx(0.05)
    half_right = onehot([0, 0, 1, 1], 0.95)
    assert expected_calibration_error(half_right, labels) == pytest.approx(0.45)
    assert evaluate(np.zeros((0, 7)), np.array([], dtype=int)) == {"n": 0}
