"""Model files: ``models/<version>/<name>`` in the object store, written once, never moved.

Loading needs a local file (ONNX Runtime and torch open paths), so ``STORAGE_ROOT/models`` is
where every process reads them. On the local backend that folder is the store itself; with a
bucket it is this machine's cache: a file written here is uploaded create-only, and a replica or
worker that lacks one downloads it and checks its sha256 before it gets its final name. Either
way every key the registry holds stays valid (D10)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from allcare.core.config import Settings
from allcare.core.durable import durable_path
from allcare.store.objects import ObjectStore, ObjectStoreError, open_object_store

READ_ONLY = 0o400  # and owner-only, like all patient-related data
PREFIX = "models/"


class ModelFileCorrupt(ObjectStoreError):
    """A downloaded model file's sha256 is not the one the registry recorded."""


@dataclass(frozen=True)
class StoredModelFile:
    key: str
    sha256: str
    size_bytes: int


class ModelFiles:
    def __init__(self, cache_dir: Path, objects: ObjectStore) -> None:
        self.cache_dir = cache_dir
        self.objects = objects

    @classmethod
    def of(cls, settings: Settings) -> ModelFiles:
        return cls(settings.models_dir, open_object_store(settings))

    def write(self, version_id: str, name: str, write: Callable[[Path], object]) -> StoredModelFile:
        """``write`` fills a temp file; it becomes ``<version>/<name>``, read-only, and is
        uploaded when the store is remote."""
        key = f"{version_id}/{name}"
        target = self.cache_dir / key
        with durable_path(target, mode=READ_ONLY) as temp:
            write(temp)
        stored = StoredModelFile(key, _sha256(target), target.stat().st_size)
        if self.objects.remote:
            self.objects.put_file_new(PREFIX + key, target)
        return stored

    def copy(self, version_id: str, source: Path, *, name: str | None = None) -> StoredModelFile:
        """``name`` defaults to ``model.onnx`` or ``model.pt`` by the source's suffix."""
        if name is None:
            name = "model.onnx" if source.suffix.lower() == ".onnx" else "model.pt"
        return self.write(version_id, name, lambda temp: shutil.copyfile(source, temp))

    def local_path(self, key: str, sha256: str | None) -> Path:
        """The file to open; fetched into the cache first where this machine lacks it."""
        target = self.cache_dir / key
        if target.exists() or not self.objects.remote:
            return target
        with durable_path(target, mode=READ_ONLY) as temp:
            self.objects.get_to_file(PREFIX + key, temp)
            if sha256 is not None and _sha256(temp) != sha256:
                raise ModelFileCorrupt(
                    f"model file {key} from {self.objects.describe()} does not match the "
                    "sha256 the registry recorded; it was not used"
                )
        return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
