"""Patient data is readable by the server's own user only: 0600 files, 0700 folders.

The mask is set process-wide because many writers create files under STORAGE_ROOT: SQLite (and
its -wal/-shm files), the blob store, torch and ONNX saving model files, zip archives of
backups. One umask covers them all, libraries included, where per-call modes would miss some.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

PRIVATE_UMASK = 0o077


def make_private() -> None:
    """Files and folders this process creates from now on are owner-only."""
    os.umask(PRIVATE_UMASK)


@dataclass(frozen=True)
class WiderFiles:
    """Entries under a folder that others than the owner may read, write or enter."""

    count: int
    examples: tuple[Path, ...]


def wider_than_private(root: Path, examples: int = 3) -> WiderFiles:
    """Walk ``root`` (not following links) for entries with any group or other permission."""
    found: list[Path] = []
    count = 0
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode):
                continue
            if mode & 0o077:
                count += 1
                if len(found) < examples:
                    found.append(Path(entry.path))
            if stat.S_ISDIR(mode):
                pending.append(Path(entry.path))
    if root.exists() and root.stat().st_mode & 0o077:
        count += 1
        found.insert(0, root)
    return WiderFiles(count, tuple(found[:examples]))
