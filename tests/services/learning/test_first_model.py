"""``allcare train --limit``: a stratified, seeded sample, not the file's first rows."""

from collections import Counter
from pathlib import Path

from allcare.services.learning.first_model import FolderSample, stratified_sample


def samples() -> list[FolderSample]:
    """Sorted like an export: 300 of class 2 first, then the others."""
    labels = [2] * 300 + [5] * 600 + [4] * 80 + [0] * 15 + [3] * 5
    return [FolderSample(Path(f"IMG_{i:05d}.jpg"), label) for i, label in enumerate(labels)]


def test_a_limit_draws_every_class_in_its_share() -> None:
    chosen = stratified_sample(samples(), 100, seed=0)
    counts = Counter(sample.label for sample in chosen)
    assert len(chosen) == 100
    assert set(counts) == {0, 2, 3, 4, 5}
    assert 25 <= counts[2] <= 35
    assert 55 <= counts[5] <= 65
    assert counts[3] >= 1


def test_the_sample_is_seeded_and_keeps_the_file_order() -> None:
    first = stratified_sample(samples(), 50, seed=1)
    assert first == stratified_sample(samples(), 50, seed=1)
    assert first != stratified_sample(samples(), 50, seed=2)
    assert [s.path.name for s in first] == sorted(s.path.name for s in first)
    assert stratified_sample(samples()[:10], 50, seed=0) == samples()[:10]
