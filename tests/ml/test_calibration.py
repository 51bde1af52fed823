import io

import numpy as np
import torch
from PIL import Image

from allcare.ml.calibration import calibrate, fit_temperature, fold_temperature, logits_of
from allcare.ml.preprocess import to_model_input
from tests.models import TinyClassifier
from tests.photos import sharp_photo


def _photo(seed: int) -> np.ndarray:
    return to_model_input(Image.open(io.BytesIO(sharp_photo(seed=seed))).convert("RGB"))


def _overconfident(temperature: float, count: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(true logits); the model reports those logits times T."""
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0.0, 1.5, (count, 7))
    probabilities = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(7, p=row) for row in probabilities])
    return true_logits * temperature, labels


def test_the_fitted_temperature_undoes_a_known_overconfidence() -> None:
    logits, labels = _overconfident(2.5)
    fitted = fit_temperature(logits, labels)
    assert abs(fitted.temperature - 2.5) < 0.25
    assert fitted.nll_after < fitted.nll_before
    assert fitted.photos == 4000
    honest = fit_temperature(*_overconfident(1.0))
    assert abs(honest.temperature - 1.0) < 0.1


def test_folding_divides_the_logits_and_keeps_every_top_class() -> None:
    module = TinyClassifier(seed=3).eval()
    inputs = [_photo(seed) for seed in range(6)]
    before = logits_of(module, inputs)
    assert fold_temperature(module, 2.0, inputs[0])
    after = logits_of(module, inputs)
    np.testing.assert_allclose(after, before / 2.0, rtol=1e-4, atol=1e-5)
    assert (after.argmax(axis=1) == before.argmax(axis=1)).all()


def test_a_model_whose_last_layer_is_not_its_logits_is_left_alone() -> None:
    module = torch.nn.Sequential(TinyClassifier(seed=1), torch.nn.Sigmoid()).eval()
    inputs = [_photo(seed) for seed in range(4)]
    before = logits_of(module, inputs)
    assert calibrate(module, inputs, np.array([0, 1, 2, 3])) is None
    np.testing.assert_allclose(logits_of(module, inputs), before)
