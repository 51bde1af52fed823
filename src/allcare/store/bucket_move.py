"""Copy an installation's photos and model files from the local folder into a bucket, resumably.

Every file a committed row references is copied create-only and read back: its sha256 in the
bucket must equal the local file's (sealed bytes compared as stored, so no key is needed). A
second run, after an interruption or once the server is stopped, reads what is already in the
bucket, verifies it the same way and copies only the rest. Local files are left in place.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from allcare.store.backup import referenced_files
from allcare.store.db import Database
from allcare.store.objects import ObjectMissing, ObjectStore, Readable

CHUNK = 1 << 20


class MoveError(RuntimeError):
    """A file cannot be copied or does not verify; the message names it."""


@dataclass
class MoveReport:
    total: int = 0
    copied: int = 0
    already_there: int = 0
    copied_bytes: int = 0


def move_to_bucket(
    db: Database,
    local: ObjectStore,
    bucket: ObjectStore,
    progress: Callable[[str], None] = lambda _key: None,
) -> MoveReport:
    with db.engine.connect() as connection:
        keys = [f"{name}/{key}" for name, key in referenced_files(connection)]
    report = MoveReport(total=len(keys))
    with tempfile.TemporaryDirectory(prefix="allcare-move-") as scratch:
        temp = Path(scratch) / "object"
        for key in keys:
            try:
                local.get_to_file(key, temp)
            except ObjectMissing as exc:
                raise MoveError(f"{key} is referenced but missing locally: {exc}") from exc
            digest = _file_sha256(temp)
            try:
                there = _sha256_of(bucket, key)
            except ObjectMissing:
                there = None
            if there is None:
                bucket.put_file_new(key, temp)
                there = _sha256_of(bucket, key)
                report.copied += 1
                report.copied_bytes += temp.stat().st_size
            else:
                report.already_there += 1
            if there != digest:
                raise MoveError(
                    f"{key} in {bucket.describe()} differs from the local file (sha256 "
                    f"{there} vs {digest}); remove it from the bucket and run again"
                )
            progress(key)
    return report


def _sha256_of(objects: ObjectStore, key: str) -> str:
    with objects.open(key) as stream:
        return _stream_sha256(stream)


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return _stream_sha256(handle)


def _stream_sha256(stream: Readable) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
