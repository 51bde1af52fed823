"""Model files under ``STORAGE_ROOT/models/<version>/``: written once, read-only, never moved.

Like photos they are the store's: written through core/durable.py with their sha256 recorded,
so every path the registry holds stays valid (D10)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from allcare.core.durable import durable_path

READ_ONLY = 0o400  # and owner-only, like all patient-related data


@dataclass(frozen=True)
class StoredModelFile:
    key: str
    sha256: str
    size_bytes: int


def write_model_file(
    models_dir: Path, version_id: str, name: str, write: Callable[[Path], object]
) -> StoredModelFile:
    """``write`` fills a temp file; it becomes ``<version>/<name>``, read-only."""
    target = models_dir / version_id / name
    with durable_path(target, mode=READ_ONLY) as temp:
        write(temp)
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return StoredModelFile(f"{version_id}/{name}", digest.hexdigest(), target.stat().st_size)


def copy_model_file(
    models_dir: Path, version_id: str, source: Path, *, name: str | None = None
) -> StoredModelFile:
    """``name`` defaults to ``model.onnx`` or ``model.pt`` by the source's suffix."""
    if name is None:
        name = "model.onnx" if source.suffix.lower() == ".onnx" else "model.pt"
    return write_model_file(
        models_dir, version_id, name, lambda temp: shutil.copyfile(source, temp)
    )
