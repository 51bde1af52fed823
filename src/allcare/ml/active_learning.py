"""Which unlabelled cases an expert should label next, from stored model outputs only.

A pool holds the class probabilities of every photo of every candidate case (and an embedding
loader for diversity). A strategy ranks cases, most useful first; a case is as uncertain as its
most uncertain photo. Strategies are small classes with a ``rank`` method, so a new one is a few
lines:

- ``margin`` (default): smallest gap between the two most likely classes (minimum-margin case
  sampling, what the app was built for);
- ``entropy``: highest predictive entropy;
- ``least_confidence``: lowest top-class probability;
- ``diversity``: k-center greedy over the embeddings of the most uncertain cases, so one batch
  does not spend every label on near-duplicates;
- ``random``: the baseline the others must beat.

The melanoma safeguard then reserves a share of every prefix of the ranking for cases whose
melanoma probability is high, oldest first, so suspected melanomas are never starved however
confident the model is about them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

import numpy as np

from allcare.ml.classes import CLASS_NAMES, NUM_CLASSES

MEL = CLASS_NAMES.index("mel")
DIVERSITY_POOL_FACTOR = 10
DIVERSITY_POOL_MIN = 100


@dataclass
class Pool:
    """Candidate cases and their photos' probabilities (rows of ``probabilities`` belong to the
    case at the same position of ``image_case``). ``age`` orders cases oldest first (smaller is
    older). ``embeddings`` returns one vector per requested case, or None when unavailable."""

    size: int
    probabilities: np.ndarray
    image_case: np.ndarray
    age: np.ndarray
    embeddings: Callable[[np.ndarray], np.ndarray | None] = field(default=lambda _: None)

    def per_case(self, values: np.ndarray, *, worst: str, empty: float) -> np.ndarray:
        """Reduce per-photo values to per-case ones (``min`` or ``max``); ``empty`` for a case
        without any photo probabilities."""
        out = np.full(self.size, empty, dtype=np.float64)
        if len(values):
            reducer = np.minimum if worst == "min" else np.maximum
            seeded = np.full(self.size, np.inf if worst == "min" else -np.inf)
            reducer.at(seeded, self.image_case, values)
            present = np.isfinite(seeded)
            out[present] = seeded[present]
        return out

    def margins(self) -> np.ndarray:
        top2 = np.sort(self.probabilities, axis=1)[:, -2:] if len(self.probabilities) else None
        values = top2[:, 1] - top2[:, 0] if top2 is not None else np.zeros(0)
        return self.per_case(values, worst="min", empty=1.0)

    def melanoma(self) -> np.ndarray:
        values = self.probabilities[:, MEL] if len(self.probabilities) else np.zeros(0)
        return self.per_case(values, worst="max", empty=0.0)


class StrategyName(StrEnum):
    """The one list of strategy names: the candidates route accepts exactly these."""

    MARGIN = "margin"
    ENTROPY = "entropy"
    LEAST_CONFIDENCE = "least_confidence"
    DIVERSITY = "diversity"
    RANDOM = "random"


if TYPE_CHECKING:
    StrategyLiteral = str
else:  # the same names as a Literal, so request validation answers as it always did
    StrategyLiteral = Literal[tuple(name.value for name in StrategyName)]


class Strategy(Protocol):
    name: ClassVar[StrategyName]

    def rank(self, pool: Pool, k: int) -> np.ndarray:
        """Case positions, most useful first (at least ``k`` of them when the pool has them)."""
        ...


def _ascending(scores: np.ndarray, pool: Pool) -> np.ndarray:
    """Stable: equal scores keep the older case first."""
    return np.lexsort((pool.age, scores))


class MarginSampling:
    name: ClassVar[StrategyName] = StrategyName.MARGIN

    def rank(self, pool: Pool, k: int) -> np.ndarray:
        return _ascending(pool.margins(), pool)


class EntropySampling:
    name: ClassVar[StrategyName] = StrategyName.ENTROPY

    def rank(self, pool: Pool, k: int) -> np.ndarray:
        p = np.clip(pool.probabilities, 1e-12, 1.0)
        values = -(p * np.log(p)).sum(axis=1) / math.log(NUM_CLASSES) if len(p) else np.zeros(0)
        return _ascending(-pool.per_case(values, worst="max", empty=0.0), pool)


class LeastConfidence:
    name: ClassVar[StrategyName] = StrategyName.LEAST_CONFIDENCE

    def rank(self, pool: Pool, k: int) -> np.ndarray:
        values = 1.0 - pool.probabilities.max(axis=1) if len(pool.probabilities) else np.zeros(0)
        return _ascending(-pool.per_case(values, worst="max", empty=0.0), pool)


@dataclass
class RandomSampling:
    name: ClassVar[StrategyName] = StrategyName.RANDOM
    seed: int = 0

    def rank(self, pool: Pool, k: int) -> np.ndarray:
        return np.random.default_rng(self.seed).permutation(pool.size)


class DiversitySampling:
    """k-center greedy (Sener and Savarese, 2018) within the most uncertain cases by margin:
    each next pick is the case farthest from every case already picked. Without embeddings
    the probability vectors stand in for them."""

    name: ClassVar[StrategyName] = StrategyName.DIVERSITY

    def rank(self, pool: Pool, k: int) -> np.ndarray:
        by_margin = MarginSampling().rank(pool, k)
        shortlist = by_margin[: max(DIVERSITY_POOL_MIN, DIVERSITY_POOL_FACTOR * k)]
        if len(shortlist) <= 1:
            return by_margin
        vectors = pool.embeddings(shortlist)
        if vectors is None:
            vectors = self._probability_vectors(pool, shortlist)
        vectors = np.asarray(vectors, dtype=np.float32)
        picked = [0]
        distance = np.linalg.norm(vectors - vectors[0], axis=1)
        for _ in range(min(k, len(shortlist)) - 1):
            distance[picked] = -1.0
            chosen = int(distance.argmax())
            picked.append(chosen)
            distance = np.minimum(distance, np.linalg.norm(vectors - vectors[chosen], axis=1))
        chosen_cases = shortlist[picked]
        rest = np.setdiff1d(by_margin, chosen_cases, assume_unique=True)
        rest = by_margin[np.isin(by_margin, rest)]
        return np.concatenate([chosen_cases, rest])

    @staticmethod
    def _probability_vectors(pool: Pool, cases: np.ndarray) -> np.ndarray:
        sums = np.zeros((pool.size, NUM_CLASSES))
        counts = np.zeros(pool.size)
        np.add.at(sums, pool.image_case, pool.probabilities)
        np.add.at(counts, pool.image_case, 1)
        return sums[cases] / np.maximum(counts[cases], 1)[:, None]


STRATEGIES: dict[StrategyName, type[Strategy]] = {
    cls.name: cls
    for cls in (MarginSampling, EntropySampling, LeastConfidence, DiversitySampling, RandomSampling)
}


@dataclass(frozen=True)
class Selection:
    cases: np.ndarray
    safeguarded: np.ndarray


def select(
    pool: Pool, strategy: Strategy, k: int, *, mel_quota: float, mel_suspicion: float
) -> Selection:
    """The top ``k`` cases (all when ``k`` is 0), with the melanoma safeguard: among the first
    ``n`` of the result at least ``floor(n * mel_quota)`` are suspected melanomas when enough
    exist, the oldest waiting first."""
    k = pool.size if k <= 0 else min(k, pool.size)
    ranked = iter(int(i) for i in strategy.rank(pool, k))
    suspected = pool.melanoma() >= mel_suspicion
    waiting = iter(int(i) for i in np.argsort(pool.age, kind="stable") if suspected[i])
    result: list[int] = []
    safeguarded: list[int] = []
    taken = np.zeros(pool.size, dtype=bool)
    have = 0
    while len(result) < k:
        if have < math.floor((len(result) + 1) * mel_quota + 1e-9):
            oldest = next((i for i in waiting if not taken[i]), None)
            if oldest is not None:
                result.append(oldest)
                safeguarded.append(oldest)
                taken[oldest] = True
                have += 1
                continue
        case = next(i for i in ranked if not taken[i])
        result.append(case)
        taken[case] = True
        have += int(suspected[case])
    return Selection(np.array(result, dtype=int), np.array(safeguarded, dtype=int))
