"""The ImageNet-pretrained EfficientNet-Lite0: the pinned weight file, the key mapping proven by
classifying a real cat photo, and a 7-class model that serves with both runtimes."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from allcare.ml import pretrained
from allcare.ml.architectures import build, early_layers
from allcare.ml.loading import ModelOptions, load_model
from allcare.ml.preprocess import to_model_input
from allcare.ml.runners import softmax

# ImageNet classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
CATS = range(281, 286)


def test_the_backbone_with_its_imagenet_head_sees_a_cat() -> None:
    """scikit-image's chelsea() is a real photo of a cat, never seen by the project before:
    only correctly mapped weights (and the right input scale) put it among the cat classes."""
    model = build("efficientnet_lite0", pretrained=True)
    backbone = model.backbone
    imagenet_head = torch.nn.Linear(1280, 1000)
    state = pretrained.imagenet_state_dict()
    imagenet_head.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    backbone.classifier = imagenet_head
    model.eval()
    photo = Image.fromarray(data.chelsea())
    with torch.no_grad():
        probabilities = model(torch.from_numpy(to_model_input(photo))[None]).softmax(dim=1)[0]
    top = int(probabilities.argmax())
    assert top in CATS, f"top class {top}"
    assert float(probabilities[list(CATS)].sum()) > 0.8


def test_a_different_weight_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pretrained, "WEIGHT_SHA256", "0" * 64)
    with pytest.raises(pretrained.PretrainedWeightsError, match="refusing to load"):
        build("efficientnet_lite0", pretrained=True)


def test_random_initialisation_stays_available_and_differs() -> None:
    torch.manual_seed(0)
    random_start = build("efficientnet_lite0")
    imagenet = build("efficientnet_lite0", pretrained=True)
    stem = "backbone.conv_stem.weight"
    assert not torch.equal(random_start.state_dict()[stem], imagenet.state_dict()[stem])
    assert len(early_layers(imagenet)) == 5
    assert early_layers(build("mobilenet_v3_large")) == []


def test_a_seven_class_lite0_serves_with_both_runtimes(tmp_path: Path) -> None:
    module = build("efficientnet_lite0", pretrained=True).eval()
    path = tmp_path / "lite0.pt"
    torch.save(module.state_dict(), path)  # bare: the architecture is detected from the keys
    sample = np.random.default_rng(1).standard_normal((3, 3, 224, 224)).astype(np.float32)
    runs = {}
    for runtime in ("torch", "onnx"):
        model = load_model(path, ModelOptions(runtime, "cpu", 2, tmp_path / "cache"))
        assert model.source.architecture == "efficientnet_lite0"
        output = model.runner.run(sample)
        assert output.features is not None
        assert output.features.shape == (3, 1280)
        runs[runtime] = softmax(output.logits)
    np.testing.assert_allclose(runs["torch"], runs["onnx"], atol=1e-3)
