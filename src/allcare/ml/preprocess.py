"""The one image-to-tensor transform, shared by serving and training (D28).

Shorter side to 256 (bilinear, aspect kept), centre crop 224, scale to [0, 1], ImageNet
normalisation: exactly torchvision's ``Resize(256)``, ``CenterCrop(224)``, ``ToTensor()``,
``Normalize(...)`` on a PIL image, written with PIL and numpy so serving needs no torch here.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

RESIZE_SHORTER = 256
INPUT_SIZE = 224
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)


def resized_size(width: int, height: int, shorter: int = RESIZE_SHORTER) -> tuple[int, int]:
    """torchvision's rule: the shorter side becomes ``shorter``, the longer one is truncated."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def to_model_input(image: Image.Image) -> np.ndarray:
    """RGB PIL image -> float32 array of shape (3, 224, 224)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    image = image.resize(resized_size(*image.size), Image.Resampling.BILINEAR)
    width, height = image.size
    left = round((width - INPUT_SIZE) / 2.0)
    top = round((height - INPUT_SIZE) / 2.0)
    image = image.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return (array - MEAN) / STD
