"""Small numeric vectors stored as bytes: a 3-byte header (``\\0V`` + dtype code) and the raw
little-endian values. The leading zero byte keeps a plain vector from ever looking like a sealed
value (store/crypto.py ``MAGIC``)."""

from __future__ import annotations

from typing import Any

import numpy as np

_HEADER = b"\x00V"
_DTYPES: dict[bytes, np.dtype[Any]] = {b"f": np.dtype("<f4"), b"e": np.dtype("<f2")}
_CODES = {dtype: code for code, dtype in _DTYPES.items()}


def pack(values: np.ndarray) -> bytes:
    dtype = np.dtype(values.dtype).newbyteorder("<")
    if dtype not in _CODES:
        raise ValueError(f"unsupported vector type {values.dtype}")
    return _HEADER + _CODES[dtype] + np.ascontiguousarray(values, dtype=dtype).tobytes()


def unpack(data: bytes) -> np.ndarray:
    if data[:2] != _HEADER or data[2:3] not in _DTYPES:
        raise ValueError("not a packed vector")
    return np.frombuffer(data, dtype=_DTYPES[data[2:3]], offset=3)
