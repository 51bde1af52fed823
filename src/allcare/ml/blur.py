"""Sharpness as the variance of the Laplacian, on a fixed-scale grey image.

The grey image is downscaled (area interpolation) until its shorter side is 256 px, never
upscaled, so the same photo scores alike at any phone resolution. See bench/blur_calibration.py
for how the default threshold was chosen on real HAM10000 images.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

BLUR_SCALE_SHORTER = 256


def blur_score(image: Image.Image) -> float:
    grey = np.asarray(image.convert("L"))
    height, width = grey.shape
    scale = BLUR_SCALE_SHORTER / min(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
