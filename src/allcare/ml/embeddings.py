"""Compact image embeddings for diversity-aware active learning.

Penultimate-layer features (2048 values for ResNet50, 1280 for EfficientNetV2-M) are reduced to
64 by a fixed Gaussian random projection (Johnson-Lindenstrauss: distances are kept up to a small
factor), stored as float16: 128 bytes an image instead of 8 KB. The projection depends only on
the feature size, so embeddings of models with the same backbone stay comparable.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

EMBEDDING_DIM = 64


@lru_cache(maxsize=8)
def _projection(feature_dim: int) -> np.ndarray:
    rng = np.random.default_rng(feature_dim)
    scale = 1.0 / np.sqrt(EMBEDDING_DIM)
    return (rng.standard_normal((feature_dim, EMBEDDING_DIM)) * scale).astype(np.float32)


def compress(features: np.ndarray) -> np.ndarray:
    """(N, D) features -> (N, 64) float16 embeddings."""
    reduced = features.astype(np.float32) @ _projection(features.shape[1])
    return np.clip(reduced, -60000, 60000).astype(np.float16)
