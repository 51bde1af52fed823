"""The gate's interval rules on constructed predictions of two models on the same cases."""

import numpy as np

from allcare.ml.classes import CLASS_NAMES, NUM_CLASSES
from allcare.ml.paired_bootstrap import Interval, compare
from allcare.services.learning.gate import GatePolicy, Verdict, decide

MEL = CLASS_NAMES.index("mel")
POLICY = GatePolicy(
    min_eval_cases=100, min_improvement=0.0, max_ece_increase=0.03, min_melanomas=20
)


def labels(cases: int = 700) -> np.ndarray:
    return np.arange(cases) % NUM_CLASSES


def predictions(
    truth: np.ndarray, right: float, *, mel_right: float | None = None, seed: int = 0
) -> np.ndarray:
    """Each case is right with probability ``right`` (melanomas with ``mel_right``), with a
    confidence that matches that rate, so calibration is honest."""
    rng = np.random.default_rng(seed)
    rate = np.where(truth == MEL, right if mel_right is None else mel_right, right)
    correct = rng.random(len(truth)) < rate
    wrong = (truth + rng.integers(1, NUM_CLASSES, len(truth))) % NUM_CLASSES
    predicted = np.where(correct, truth, wrong)
    confidence = np.clip(rate, 1.0 / NUM_CLASSES + 0.01, 0.99)
    probabilities = np.tile(((1 - confidence) / (NUM_CLASSES - 1))[:, None], NUM_CLASSES)
    probabilities[np.arange(len(truth)), predicted] = confidence
    return probabilities


def bounds(interval: Interval) -> tuple[float, float]:
    assert interval.low is not None
    assert interval.high is not None
    return interval.low, interval.high


def test_the_first_model_is_never_promoted_automatically() -> None:
    decision = decide(None, POLICY)
    assert decision.verdict == Verdict.HOLD
    assert "no production model" in decision.reasons[0]


def test_a_clearly_better_candidate_is_promoted() -> None:
    truth = labels()
    production = predictions(truth, 0.55, seed=1)
    candidate = predictions(truth, 0.75, seed=2)
    comparison = compare(truth, candidate, production, seed=0)
    assert bounds(comparison.balanced_accuracy_gain)[0] > 0
    assert decide(comparison, POLICY) == decide(comparison, POLICY)
    assert decide(comparison, POLICY).verdict == Verdict.PROMOTE


def test_a_noisy_gain_is_held_not_promoted() -> None:
    truth = labels(140)
    production = predictions(truth, 0.60, seed=1)
    candidate = predictions(truth, 0.60, seed=3)
    comparison = compare(truth, candidate, production, seed=0)
    low, high = bounds(comparison.balanced_accuracy_gain)
    assert low < 0 < high
    decision = decide(comparison, POLICY)
    assert decision.verdict == Verdict.HOLD
    assert any("balanced accuracy gain" in reason for reason in decision.reasons)


def test_a_candidate_worse_on_every_rule_is_rejected() -> None:
    truth = labels()
    production = predictions(truth, 0.70, seed=1)
    candidate = predictions(truth, 0.40, seed=2)
    candidate = 0.2 * candidate + 0.8 * np.eye(NUM_CLASSES)[candidate.argmax(axis=1)]
    decision = decide(compare(truth, candidate, production), POLICY)
    assert decision.verdict == Verdict.REJECT
    assert len(decision.reasons) == 3


def test_lower_melanoma_sensitivity_is_refused_however_good_the_rest() -> None:
    truth = labels()
    production = predictions(truth, 0.60, mel_right=0.80, seed=1)
    candidate = predictions(truth, 0.80, mel_right=0.45, seed=2)
    comparison = compare(truth, candidate, production)
    assert bounds(comparison.balanced_accuracy_gain)[0] > 0
    decision = decide(comparison, POLICY)
    assert decision.verdict == Verdict.REJECT
    assert any("melanoma sensitivity" in reason for reason in decision.reasons)


def test_sizes_count_cases_and_melanomas() -> None:
    truth = labels(98)
    comparison = compare(truth, predictions(truth, 0.9), predictions(truth, 0.5))
    small = decide(comparison, POLICY)
    assert small.verdict == Verdict.HOLD
    assert "98 cases" in small.reasons[0]
    few_melanomas = np.where(np.arange(400) < 10, MEL, np.arange(400) % 4)
    comparison = compare(
        few_melanomas, predictions(few_melanomas, 0.9), predictions(few_melanomas, 0.5)
    )
    held = decide(comparison, POLICY)
    assert held.verdict == Verdict.HOLD
    assert any("10 melanoma cases" in reason for reason in held.reasons)


def test_lesion_groups_are_resampled_together() -> None:
    """Five photos of one lesion are one piece of evidence, not five: the interval widens."""
    lesions = labels(140)
    truth = np.repeat(lesions, 5)
    production = np.repeat(predictions(lesions, 0.55, seed=1), 5, axis=0)
    candidate = np.repeat(predictions(lesions, 0.62, seed=2), 5, axis=0)
    alone = compare(truth, candidate, production, seed=0).balanced_accuracy_gain
    grouped = compare(
        truth, candidate, production, groups=np.repeat(np.arange(140), 5), seed=0
    ).balanced_accuracy_gain
    assert alone.estimate == grouped.estimate
    alone_low, alone_high = bounds(alone)
    grouped_low, grouped_high = bounds(grouped)
    assert grouped_high - grouped_low > 1.8 * (alone_high - alone_low)
