"""What a model file is (format, architecture, hash); importable without torch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class ModelLoadError(RuntimeError):
    """The model file cannot be served; the message says why and what to do."""


class ModelFormat(StrEnum):
    TORCHSCRIPT = "torchscript"
    CHECKPOINT = "checkpoint"
    STATE_DICT = "state_dict"
    ONNX = "onnx"


@dataclass(frozen=True)
class ModelSource:
    path: Path
    sha256: str
    format: ModelFormat
    architecture: str | None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
