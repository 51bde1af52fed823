"""One writer per data directory: ``allcare serve`` (and ``restore``) hold an exclusive lock.

Start-up recovery (blob intents, partial model files) and the in-process throttles assume a
single server per STORAGE_ROOT; a second one would race the first's recovery and split its
limits. The lock is ``flock`` on a file in the data directory, and, for a SQLite database kept
elsewhere, on a file beside the database. The kernel drops it when the holder dies, so a
killed server never leaves a stale lock; the file keeps the holder's pid for the message.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from allcare.core.config import ConfigError, Settings

LOCK_NAME = ".allcare.lock"


class DataDirectoryInUse(ConfigError):
    """Another process holds the data directory (or the SQLite database) for writing."""


def lock_paths(settings: Settings) -> list[Path]:
    """The data directory's lock file, and one beside a SQLite database kept outside it."""
    paths = [settings.storage_root / LOCK_NAME]
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        database = Path(url.database).resolve()
        if database.parent != settings.storage_root.resolve():
            paths.append(database.with_name(database.name + ".lock"))
    return paths


@contextmanager
def single_writer(settings: Settings, what: str) -> Iterator[None]:
    """Hold every lock of ``lock_paths`` for the duration; refuse with the holder's pid."""
    with ExitStack() as held:
        for path in lock_paths(settings):
            held.enter_context(_locked(path, what))
        yield


@contextmanager
def _locked(path: Path, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "unknown"
            raise DataDirectoryInUse(
                f"{path.parent} is in use by another AllCare process ({holder}); stop it "
                f"before {what}, or give this one its own STORAGE_ROOT and database"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()}, {what}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock
