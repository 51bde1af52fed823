import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

from allcare.ml.preprocess import to_model_input

SEEDS_TRANSFORM = transforms.Compose(
    [
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ]
)


@pytest.mark.parametrize("size", [(600, 450), (450, 600), (224, 224), (257, 999), (4032, 3024)])
def test_matches_the_seeds_torchvision_transform(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    ours = to_model_input(image)
    assert ours.shape == (3, 224, 224)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, SEEDS_TRANSFORM(image).numpy(), atol=1e-5)
