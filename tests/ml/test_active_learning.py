"""Selection strategies on hand-made pools, where the right answer is known."""

import numpy as np
import pytest

from allcare.ml.active_learning import (
    STRATEGIES,
    DiversitySampling,
    EntropySampling,
    LeastConfidence,
    MarginSampling,
    Pool,
    RandomSampling,
    StrategyName,
    select,
)
from allcare.ml.classes import CLASS_NAMES

MEL = CLASS_NAMES.index("mel")


def probs(top: int, p1: float, second: int | None = None, p2: float = 0.0) -> list[float]:
    row = np.full(7, 0.0)
    row[top] = p1
    if second is not None:
        row[second] = p2
    rest = 1.0 - row.sum()
    row[row == 0] = rest / np.count_nonzero(row == 0)
    return row.tolist()


def pool(rows: list[tuple[int, list[float]]], size: int, **kw: object) -> Pool:
    return Pool(
        size=size,
        probabilities=np.array([r for _, r in rows], dtype=np.float64),
        image_case=np.array([c for c, _ in rows], dtype=np.int64),
        age=np.arange(size, dtype=np.float64),
        **kw,  # type: ignore[arg-type]
    )


def test_margin_is_the_minimum_over_a_cases_photos_and_ranks_ascending() -> None:
    p = pool(
        [
            (0, probs(5, 0.9)),  # case 0: confident
            (1, probs(5, 0.9)),
            (1, probs(1, 0.45, 2, 0.40)),  # case 1: one uncertain photo, margin 0.05
            (2, probs(0, 0.5, 3, 0.3)),  # case 2: margin 0.2
        ],
        size=4,  # case 3 has no photo: margin 1.0, ranked last
    )
    margins = p.margins()
    assert margins[1] == pytest.approx(0.05)
    assert margins[2] == pytest.approx(0.2)
    assert margins[3] == 1.0
    assert MarginSampling().rank(p, 2).tolist() == [1, 2, 0, 3]


def test_entropy_and_least_confidence_prefer_flat_predictions() -> None:
    p = pool(
        [(0, probs(5, 0.97)), (1, [1 / 7] * 7), (2, probs(0, 0.5, 1, 0.49)), (3, probs(4, 0.6))],
        size=4,
    )
    assert EntropySampling().rank(p, 4).tolist()[0] == 1
    assert LeastConfidence().rank(p, 4).tolist()[:2] == [1, 2]
    assert EntropySampling().rank(p, 4).tolist()[-1] == 0


def test_diversity_spreads_a_batch_over_clusters() -> None:
    """Six near-identical uncertain cases and two far away: k-center greedy covers all three
    groups with three picks, where margin sampling would take three near-duplicates."""
    rows = [(i, probs(1, 0.40 + 0.001 * i, 2, 0.39)) for i in range(8)]
    embeddings = np.zeros((8, 4))
    embeddings[:6, 0] = np.linspace(0, 0.01, 6)
    embeddings[6] = [10, 0, 0, 0]
    embeddings[7] = [0, 10, 0, 0]
    p = pool(rows, size=8, embeddings=lambda chosen: embeddings[chosen])
    picked = set(DiversitySampling().rank(p, 3)[:3].tolist())
    assert {6, 7} <= picked
    assert len(picked & set(range(6))) == 1
    assert set(MarginSampling().rank(p, 3)[:3].tolist()) <= set(range(6))


def test_diversity_without_embeddings_uses_probabilities_and_ranks_everything() -> None:
    p = pool([(i, probs(i % 7, 0.5, (i + 1) % 7, 0.3)) for i in range(20)], size=20)
    ranked = DiversitySampling().rank(p, 5)
    assert sorted(ranked.tolist()) == list(range(20))
    assert len({int(np.argmax(p.probabilities[i])) for i in ranked[:5]}) == 5


def test_random_is_a_seeded_permutation() -> None:
    p = pool([(i, probs(0, 0.5)) for i in range(10)], size=10)
    assert sorted(RandomSampling(seed=3).rank(p, 3).tolist()) == list(range(10))
    assert RandomSampling(seed=3).rank(p, 3).tolist() == RandomSampling(seed=3).rank(p, 3).tolist()
    assert set(STRATEGIES) == {"margin", "entropy", "least_confidence", "diversity", "random"}


def test_every_strategy_name_has_its_class_under_that_name() -> None:
    """The candidates route accepts ``StrategyName``; each one must rank with its own class."""
    assert set(STRATEGIES) == set(StrategyName)
    assert all(cls.name == name for name, cls in STRATEGIES.items())


def test_melanoma_safeguard_reserves_every_fifth_slot_oldest_first() -> None:
    """Confident melanoma suspicions never win on margin; the quota still brings them in."""
    uncertain = [(i, probs(1, 0.45, 2, 0.40)) for i in range(10)]
    confident_mel = [(10 + i, probs(MEL, 0.95)) for i in range(3)]
    p = pool(uncertain + confident_mel, size=13)
    chosen = select(p, MarginSampling(), 10, mel_quota=0.2, mel_suspicion=0.3)
    order = chosen.cases.tolist()
    assert (order[4], order[9]) == (10, 11)  # slots 5 and 10, the oldest suspicion first
    assert chosen.safeguarded.tolist() == [10, 11]
    assert set(order) - {10, 11} <= set(range(10))
    plain = select(p, MarginSampling(), 10, mel_quota=0.0, mel_suspicion=0.3)
    assert set(plain.cases.tolist()) == set(range(10))


def test_a_suspicion_already_ranked_counts_toward_the_quota_and_k_zero_means_all() -> None:
    rows = [(0, probs(MEL, 0.45, 1, 0.44))] + [(i, probs(1, 0.5, 2, 0.3)) for i in range(1, 6)]
    p = pool(rows, size=6)
    chosen = select(p, MarginSampling(), 0, mel_quota=0.2, mel_suspicion=0.3)
    assert chosen.cases.tolist()[0] == 0
    assert len(chosen.cases) == 6
    assert chosen.safeguarded.tolist() == []
