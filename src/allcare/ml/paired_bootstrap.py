"""Paired bootstrap of two models' metrics on the same evaluation cases.

The gate must tell a better model from a lucky one. Both models are scored on the same cases,
and the cases are resampled together (by group: one lesion or patient is one unit, so its
photos never count as independent evidence), so the interval is that of the *difference*,
which is far narrower than two separate intervals. Balanced accuracy, melanoma recall and
expected calibration error are computed for every resample with weights, vectorised: 2,000
rounds over 1,500 cases take well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allcare.ml.classes import NUM_CLASSES
from allcare.ml.evaluation import ECE_BINS, MEL

ROUNDS = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval; ``None`` bounds when not measurable."""

    estimate: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class PairedComparison:
    """Candidate minus production, each with its 95 % interval."""

    balanced_accuracy_gain: Interval
    mel_recall_change: Interval
    ece_change: Interval
    cases: int
    groups: int
    melanomas: int
    rounds: int
    seed: int


def _weighted_metrics(
    weights: np.ndarray, labels: np.ndarray, probabilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced accuracy, melanoma recall and ECE for each row of case weights (R, N)."""
    predicted = probabilities.argmax(axis=1)
    truth = np.eye(NUM_CLASSES)[labels]  # (N, 7)
    hits = truth * (predicted == labels)[:, None]
    members = weights @ truth  # (R, 7)
    right = weights @ hits
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(members > 0, right / np.maximum(members, 1e-12), np.nan)
    balanced = np.nanmean(np.where(members > 0, recall, np.nan), axis=1)
    mel = recall[:, MEL]
    confidence = probabilities.max(axis=1)
    correct = (predicted == labels).astype(float)
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, ECE_BINS - 1)
    in_bin = np.eye(ECE_BINS)[bins]  # (N, B)
    total = weights.sum(axis=1, keepdims=True)
    gap = np.abs(weights @ (in_bin * confidence[:, None]) - weights @ (in_bin * correct[:, None]))
    ece = gap.sum(axis=1) / total[:, 0]
    return balanced, mel, ece


def _resample_weights(
    labels: np.ndarray, groups: np.ndarray | None, rounds: int, seed: int
) -> tuple[np.ndarray, int]:
    """Row 0: every case once (the point estimate); rows 1..rounds: how often each case is
    drawn when its groups are resampled with replacement."""
    if groups is None:
        groups = np.arange(len(labels))
    _, group_of = np.unique(np.asarray(groups), return_inverse=True)
    group_count = int(group_of.max()) + 1
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(group_count, np.full(group_count, 1.0 / group_count), size=rounds)
    return np.vstack([np.ones(group_count), drawn])[:, group_of].astype(float), group_count


def _interval(point: float, samples: np.ndarray) -> Interval:
    if not np.isfinite(point):
        return Interval(None, None, None)
    finite = samples[np.isfinite(samples)]
    if len(finite) == 0:
        return Interval(float(point), None, None)
    tail = (1.0 - LEVEL) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high))


def compare(
    labels: np.ndarray,
    candidate: np.ndarray,
    production: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    rounds: int = ROUNDS,
    seed: int = 0,
) -> PairedComparison:
    """``labels`` (N,) class indices of N cases, ``candidate`` and ``production`` (N, 7) their
    case probabilities, ``groups`` (N,) the unit of resampling (default: each case alone)."""
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        raise ValueError("no evaluation cases")
    weights, group_count = _resample_weights(labels, groups, rounds, seed)
    cand = _weighted_metrics(weights, labels, candidate)
    prod = _weighted_metrics(weights, labels, production)
    gain, mel, ece = (c - p for c, p in zip(cand, prod, strict=True))
    return PairedComparison(
        balanced_accuracy_gain=_interval(gain[0], gain[1:]),
        mel_recall_change=_interval(mel[0], mel[1:]),
        ece_change=_interval(ece[0], ece[1:]),
        cases=len(labels),
        groups=group_count,
        melanomas=int((labels == MEL).sum()),
        rounds=rounds,
        seed=seed,
    )


def metric_interval(
    labels: np.ndarray,
    probabilities: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    rounds: int = ROUNDS,
    seed: int = 0,
) -> dict[str, Interval]:
    """One model's balanced accuracy, melanoma recall and ECE with their intervals (reports)."""
    labels = np.asarray(labels, dtype=int)
    weights, _ = _resample_weights(labels, groups, rounds, seed)
    balanced, mel, ece = _weighted_metrics(weights, labels, probabilities)
    return {
        "balanced_accuracy": _interval(balanced[0], balanced[1:]),
        "mel_recall": _interval(mel[0], mel[1:]),
        "ece": _interval(ece[0], ece[1:]),
    }
