"""Files that appear whole under their name or not at all, also after a power cut.

Every file the server keeps (photos, model files, exports, ONNX caches, backups) is written to a
hidden ``.<random>.partial`` file beside its target, flushed to disk, renamed over the target,
and the folder is flushed so the rename survives. A crash leaves only a ``.partial`` file, which
``sweep_partials`` removes at start-up.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

PARTIAL_SUFFIX = ".partial"


@contextmanager
def durable_path(
    target: Path, *, mode: int | None = None, make_parents: bool = True, keep_suffix: bool = False
) -> Iterator[Path]:
    """A temp path for code that writes by name (``torch.save``, ``zipfile``); it becomes
    ``target`` when the block ends, with ``mode`` if given. An exception leaves nothing. A
    missing folder is created unless ``make_parents`` is false (then it is an error naming it).
    ``keep_suffix`` ends the temp name with the target's suffix, for readers that go by it."""
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    elif not target.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(target.parent))
    suffix = PARTIAL_SUFFIX + (target.suffix if keep_suffix else "")
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=suffix)
    os.close(fd)
    temp = Path(temp_name)
    try:
        yield temp
        _fsync_file(temp)
        if mode is not None:
            temp.chmod(mode)
        os.replace(temp, target)
        _fsync_dir(target.parent)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextmanager
def durable_writer(target: Path) -> Iterator[IO[bytes]]:
    """The same for code that writes to a handle."""
    with durable_path(target) as temp, temp.open("wb") as handle:
        yield handle


def write_durably(target: Path, data: bytes) -> None:
    with durable_writer(target) as handle:
        handle.write(data)


def sweep_partials(root: Path) -> int:
    """Remove what interrupted writes left under ``root``; one server process per root."""
    removed = 0
    if root.exists():
        for pattern in (f".*{PARTIAL_SUFFIX}", f".*{PARTIAL_SUFFIX}.*"):
            for leftover in root.rglob(pattern):
                leftover.unlink(missing_ok=True)
                removed += 1
    return removed


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
