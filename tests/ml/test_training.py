from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from allcare.ml.preprocess import to_model_input
from allcare.ml.training import (
    TrainingCancelled,
    TrainingConfig,
    class_balanced_sampler,
    class_weights,
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


def _mean_melanoma_probability(melanoma_weight: float) -> float:
    """Photos that carry no signal, half melanoma and half naevus: what the model learns is the
    loss's prior, so a heavier melanoma weight must show as a higher melanoma probability."""
    photos, labels = loaders(8), [4, 5] * 4
    module = TinyClassifier()
    config = TrainingConfig(
        epochs=1,
        batch_size=8,
        learning_rate=0.05,
        augmentation=False,
        min_steps=150,
        melanoma_weight=melanoma_weight,
    )
    fine_tune(module, photos, labels, config, seed=0)
    with torch.no_grad():
        inputs = torch.stack([torch.from_numpy(to_model_input(load())) for load in photos])
        return float(torch.softmax(module(inputs), dim=1)[:, 4].mean())


def test_a_heavier_melanoma_weight_makes_the_model_call_melanoma_more() -> None:
    assert class_weights(3.0).tolist() == [1.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0]
    plain, weighted = _mean_melanoma_probability(1.0), _mean_melanoma_probability(3.0)
    assert weighted > plain + 0.1, (plain, weighted)
    assert (
        TrainingConfig.from_wire(
            {
                "epochs": 1,
                "batch_size": 2,
                "learning_rate": 0.1,
                "optimizer": "Adam",
                "dropout": 0.0,
                "augmentation_applied": False,
                "melanoma_weight": 2.5,
            }
        ).melanoma_weight
        == 2.5
    )


def test_ema_returns_the_moving_average_of_the_weights_and_batch_norm_statistics() -> None:
    """The EMA run takes the same steps as the plain one (same seed); what it returns is the
    warm-up moving average of that run's states after each step, buffers included."""
    config = TrainingConfig(epochs=2, batch_size=4, learning_rate=0.05, augmentation=False)
    labels = [0, 1, 2, 0, 1, 2, 4, 5]

    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.BatchNorm2d(3), TinyClassifier())

    plain, states = model(), []
    fine_tune(
        plain,
        loaders(8),
        labels,
        config,
        on_progress=lambda _: states.append(
            {k: v.detach().clone() for k, v in plain.state_dict().items()}
        ),
    )
    averaged = model()
    fine_tune(averaged, loaders(8), labels, replace(config, ema=True))

    expected = {k: v.clone() for k, v in states[0].items()}
    for count, state in enumerate(states[1:], start=1):
        share = (1.0 + count) ** -0.75
        for key, value in state.items():
            if value.is_floating_point():
                expected[key] += (value - expected[key]) * share
            else:
                expected[key] = value.clone()
    result = averaged.state_dict()
    assert len(states) == 4
    for key in expected:
        assert torch.allclose(result[key], expected[key], atol=1e-6), key
    assert not torch.allclose(result["1.head.weight"], states[-1]["1.head.weight"])
    assert not torch.allclose(result["0.running_mean"], states[-1]["0.running_mean"])
    assert int(result["0.num_batches_tracked"]) == 4
