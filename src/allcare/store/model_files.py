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
from allcare.core.durable import PARTIAL_SUFFIX, durable_path
from allcare.store.objects import ObjectMissing, ObjectStore, ObjectStoreError, open_object_store

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
        """The file to open; fetched into the cache first where this machine lacks it, with
        the exports another machine published beside it."""
        target = self.cache_dir / key
        if not self.objects.remote:
            return target
        if not target.exists():
            with durable_path(target, mode=READ_ONLY) as temp:
                self.objects.get_to_file(PREFIX + key, temp)
                if sha256 is not None and _sha256(temp) != sha256:
                    raise ModelFileCorrupt(
                        f"model file {key} from {self.objects.describe()} does not match the "
                        "sha256 the registry recorded; it was not used"
                    )
        self._fetch_exports(key)
        return target

    def publish_exports(self, key: str) -> int:
        """Exports the loader left beside a model file (``.<name>.*.onnx`` and their ``.json``
        descriptions, ml/onnx_export.py) go to the object store once: a replica without PyTorch
        then serves a ``.pt`` model that a machine with PyTorch exported. Returns how many."""
        if not self.objects.remote:
            return 0
        target = self.cache_dir / key
        published = 0
        for path in _exports_beside(target):
            object_key = PREFIX + path.relative_to(self.cache_dir).as_posix()
            if not self._has(object_key):
                self.objects.put_file_new(object_key, path)
                published += 1
        return published

    def adopt_exports(self, source: Path, key: str) -> None:
        """Exports made beside a file before it was registered (MODEL_PATH is loaded from where
        it lies) become the registry copy's: same bytes, so the same export."""
        target = self.cache_dir / key
        for path in _exports_beside(source):
            rest = path.name[len(f".{source.name}.") :]
            copy = target.parent / f".{target.name}.{rest}"
            if not copy.exists():
                with durable_path(copy, keep_suffix=True) as temp:
                    shutil.copyfile(path, temp)

    def _fetch_exports(self, key: str) -> None:
        version, _, name = key.rpartition("/")
        found = sorted(self.objects.keys(f"{PREFIX}{version}/.{name}."), key=_graph_first)
        for object_key in found:
            local = self.cache_dir / object_key[len(PREFIX) :]
            if _is_export(local.name) and not local.exists():
                with durable_path(local, keep_suffix=True) as temp:
                    self.objects.get_to_file(object_key, temp)

    def _has(self, object_key: str) -> bool:
        try:
            self.objects.size(object_key)
        except ObjectMissing:
            return False
        return True


def _is_export(name: str) -> bool:
    return name.endswith((".onnx", ".onnx.json")) and PARTIAL_SUFFIX not in name


def _graph_first(key: str) -> tuple[bool, str]:
    """The graph before its description: a reader takes an export only once both are there."""
    return key.endswith(".json"), key


def _exports_beside(target: Path) -> list[Path]:
    if not target.parent.is_dir():
        return []
    prefix = f".{target.name}."
    found = [
        path
        for path in target.parent.iterdir()
        if path.name.startswith(prefix) and _is_export(path.name) and path.is_file()
    ]
    return sorted(found, key=lambda path: _graph_first(path.name))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
