import numpy as np
import pytest

from allcare.ml.evaluation import evaluate, expected_calibration_error
from allcare.ml.paired_bootstrap import compare, metric_interval


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


def test_bootstrap_point_estimates_are_the_plain_metrics_and_intervals_cover_them() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, 600)
    probabilities = rng.dirichlet(np.ones(7), 600)
    probabilities[np.arange(600), labels] += rng.random(600)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    plain = evaluate(probabilities, labels)
    intervals = metric_interval(labels, probabilities, seed=1)
    for name in ("balanced_accuracy", "mel_recall", "ece"):
        interval = intervals[name]
        assert interval.estimate == pytest.approx(plain[name])
        assert interval.low is not None
        assert interval.high is not None
        assert interval.low <= interval.estimate <= interval.high
    same = compare(labels, probabilities, probabilities, seed=1)
    assert same.balanced_accuracy_gain.as_dict() == {"estimate": 0.0, "low": 0.0, "high": 0.0}
    assert metric_interval(labels, probabilities, seed=1) == intervals  # seeded
