"""The embedded default: objects are files under ``STORAGE_ROOT``, written by core/durable.py."""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from allcare.core.durable import PARTIAL_SUFFIX, durable_path, write_durably
from allcare.store.objects._base import (
    ObjectExists,
    ObjectMissing,
    ObjectStore,
    ObjectStoreUnavailable,
    Readable,
    check_key,
)


class LocalObjects(ObjectStore):
    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"object key escapes the store: {key!r}")
        return path

    def put_new(self, key: str, data: bytes) -> None:
        target = self.path(key)
        if target.exists():
            if target.read_bytes() == data:
                return
            raise ObjectExists(f"object {key!r} exists under {self.root}")
        write_durably(target, data)

    def put_file_new(self, key: str, source: Path) -> None:
        target = self.path(key)
        if target.exists():
            if filecmp.cmp(source, target, shallow=False):
                return
            raise ObjectExists(f"object {key!r} exists under {self.root}")
        with durable_path(target) as temp:
            shutil.copyfile(source, temp)

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"no object {key!r} under {self.root}") from None

    @contextmanager
    def open(self, key: str) -> Iterator[Readable]:
        try:
            handle = self.path(key).open("rb")
        except FileNotFoundError:
            raise ObjectMissing(f"no object {key!r} under {self.root}") from None
        with handle:
            yield handle

    def get_to_file(self, key: str, target: Path) -> None:
        try:
            shutil.copyfile(self.path(key), target)
        except FileNotFoundError:
            raise ObjectMissing(f"no object {key!r} under {self.root}") from None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return
        for folder, _, files in os.walk(base):
            for name in files:
                if name.startswith(".") and PARTIAL_SUFFIX in name:
                    continue  # a write in progress (or one a crash left), not an object
                yield (Path(folder) / name).relative_to(self.root).as_posix()

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectMissing(f"no object {key!r} under {self.root}") from None

    def check(self) -> None:
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise ObjectStoreUnavailable(f"{self.root} is not writable by this process")

    def describe(self) -> str:
        return str(self.root)
