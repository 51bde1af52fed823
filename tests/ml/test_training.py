import numpy as np
import pytest
import torch
from PIL import Image

from allcare.ml.training import (
    TrainingCancelled,
    TrainingConfig,
    class_balanced_sampler,
    fine_tune,
)
from tests.models import TinyClassifier


def loaders(count: int) -> list:
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)) for _ in range(count)
    ]
    return [lambda image=image: image for image in images]


def test_class_balanced_sampling_draws_rare_classes_as_often_as_common_ones() -> None:
    labels = [5] * 90 + [4] * 10
    drawn = np.array(labels)[list(class_balanced_sampler(labels, seed=0, num_samples=len(labels)))]
    counts = np.bincount(drawn, minlength=7)
    assert abs(int(counts[4]) - int(counts[5])) < 25


def test_fine_tune_reports_progress_logs_epochs_and_sets_dropout() -> None:
    module = torch.nn.Sequential(TinyClassifier(), torch.nn.Dropout(0.5))
    seen = []
    log = fine_tune(
        module,
        loaders(6),
        [0, 1, 2, 0, 1, 2],
        TrainingConfig(epochs=2, batch_size=4, dropout=0.1),
        on_progress=seen.append,
    )
    assert [row["epoch"] for row in log] == [1, 2]
    assert all(np.isfinite(row["train_loss"]) for row in log)
    assert seen[-1].fraction == pytest.approx(1.0)
    assert seen[-1].eta_seconds == pytest.approx(0.0)
    assert module[1].p == 0.1
    assert not module.training


def test_a_stop_request_cancels_and_bad_input_is_refused() -> None:
    with pytest.raises(TrainingCancelled):
        fine_tune(
            TinyClassifier(), loaders(4), [0, 1, 0, 1], TrainingConfig(), should_stop=lambda: True
        )
    with pytest.raises(ValueError, match="at least 2"):
        fine_tune(TinyClassifier(), loaders(1), [0], TrainingConfig())
    with pytest.raises(ValueError, match="Unknown optimizer"):
        fine_tune(TinyClassifier(), loaders(2), [0, 1], TrainingConfig(optimizer="Lion"))
