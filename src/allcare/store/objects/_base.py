"""The interface both backends implement, and its exception tree."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol


class ObjectStoreError(RuntimeError):
    """Root of the object store's errors."""


class ObjectMissing(ObjectStoreError, KeyError):
    """No object under this key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "object missing"


class ObjectExists(ObjectStoreError):
    """A create-only write found its key taken: keys are never overwritten."""


class ObjectStoreUnavailable(ObjectStoreError):
    """The store cannot be reached or refuses us (credentials, bucket); the message says why."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ObjectStore(ABC):
    """Keys are ``/``-separated relative names (``blobs/images/ab/<uuid>.jpg``)."""

    remote: bool
    """False for the local folder: its files are already where readers open them."""

    @abstractmethod
    def put_new(self, key: str, data: bytes) -> None:
        """Store ``data`` under a new key, whole or not at all; ``ObjectExists`` if the key holds
        something else (the same bytes count as written: a retried write)."""

    @abstractmethod
    def put_file_new(self, key: str, source: Path) -> None:
        """The same for a file too big to hold in memory (model files)."""

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def open(self, key: str) -> AbstractContextManager[Readable]:
        """The object as a stream, for copies that must not hold a model file in memory."""

    @abstractmethod
    def get_to_file(self, key: str, target: Path) -> None:
        """Write the object into ``target`` (a temp file the caller makes durable)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix``, in no particular order."""

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def check(self) -> None:
        """Raise ``ObjectStoreUnavailable`` unless reads and writes can work (readiness)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the objects are, for logs and health: never a credential."""


def check_key(key: str) -> str:
    """Refuse keys that could name something outside the store."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid object key: {key!r}")
    return key
