"""Online backup of one installation: every table and every file a row points to.

A backup reads all tables inside one snapshot transaction (REPEATABLE READ on PostgreSQL, a
WAL read transaction on SQLite), so it is consistent while the server keeps writing. Photos and
model files are immutable once their row is committed, so copying the ones the snapshot
references gives a matching set; they are read from the object store (store/objects/), so a
backup covers the bucket as well as the local folder, and a restore (store/restore.py) may go
into either. The archive is a zip: ``manifest.json`` (format, schema revision, row counts,
sha256 of every file), ``db/<table>.jsonl`` and ``files/...``. Sealed data stays sealed: the
encryption key is not in the archive and must be kept apart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Table, select, text

from allcare.core.durable import durable_path
from allcare.store.db import Database
from allcare.store.models import (
    Base,
    BlobIntent,
    Image,
    LoginFailure,
    ModelVersion,
    RateBucket,
)
from allcare.store.objects import (
    ObjectStore,
    ObjectStoreError,
    Readable,
    check_key,
)

FORMAT = "allcare-backup/1"
MANIFEST = "manifest.json"
CHUNK_ROWS = 1000
COPY_BUFFER = 1 << 20
# Intents name files of uncommitted writes; a restored server has none in flight. Failed logins
# and rate buckets are seconds-to-minutes of request limits, not the clinic's data.
SKIPPED_TABLES = frozenset(
    {BlobIntent.__tablename__, LoginFailure.__tablename__, RateBucket.__tablename__}
)


class BackupError(RuntimeError):
    """The archive or the restore target is not usable; the message says why."""


# Where an installation keeps its files in the object store: photos and the registry's models.
FOLDERS = ("blobs", "models")


@dataclass
class Report:
    revision: str
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    file_bytes: int = 0


def tables() -> list[Table]:
    """Parents before children, so inserts satisfy foreign keys."""
    return [t for t in Base.metadata.sorted_tables if t.name not in SKIPPED_TABLES]


def backup(db: Database, objects: ObjectStore, out: Path) -> Report:
    with durable_path(out, make_parents=False) as partial, db.engine.connect() as connection:
        if not db.is_sqlite:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin(), zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            report = _write_archive(connection, objects, archive)
    return report


def _write_archive(
    connection: Connection, objects: ObjectStore, archive: zipfile.ZipFile
) -> Report:
    revision = connection.scalar(text("SELECT version_num FROM alembic_version"))
    report = Report(revision=revision)
    for table in tables():
        with archive.open(f"db/{table.name}.jsonl", "w", force_zip64=True) as handle:
            report.rows[table.name] = _dump_rows(connection, table, handle)
    digests: dict[str, str] = {}
    for name, key in referenced_files(connection):
        entry = f"files/{name}/{key}"
        try:
            with objects.open(object_key(name, key)) as source:
                digests[entry], size = _copy_in(source, archive, entry)
        except ObjectStoreError as exc:
            raise BackupError(f"{name}/{key} could not be read: {exc}") from exc
        report.files += 1
        report.file_bytes += size
    manifest = {
        "format": FORMAT,
        "revision": revision,
        "created_at": datetime.now(UTC).isoformat(),
        "backend": connection.dialect.name,
        "rows": report.rows,
        "files": digests,
    }
    archive.writestr(MANIFEST, json.dumps(manifest, indent=1))
    return report


def _dump_rows(connection: Connection, table: Table, handle: IO[bytes]) -> int:
    statement = select(table).order_by(*table.primary_key.columns)
    result = connection.execution_options(yield_per=CHUNK_ROWS).execute(statement)
    count = 0
    for row in result.mappings():
        record = {name: _encode(value) for name, value in row.items()}
        handle.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        count += 1
    return count


def referenced_files(connection: Connection) -> Iterator[tuple[str, str]]:
    """(folder, key) of every photo and model file a committed row points to."""
    for key in connection.scalars(select(Image.blob_key).order_by(Image.id)):
        yield "blobs", key
    models = select(ModelVersion.file_key).where(ModelVersion.file_key.is_not(None))
    for file_key in connection.scalars(models.order_by(ModelVersion.id)):
        assert file_key is not None, "the query keeps versions with a file"
        yield "models", file_key


def object_key(name: str, key: str) -> str:
    if name not in FOLDERS:
        raise BackupError(f"The backup names a file outside its folders: {name}/{key!r}")
    try:
        return f"{name}/{check_key(key)}"
    except ValueError as exc:
        raise BackupError(f"A stored file key leaves its folder: {key!r}") from exc


def _copy_in(source: Readable, archive: zipfile.ZipFile, entry: str) -> tuple[str, int]:
    """Photos and model weights do not compress; store them as they are."""
    info = zipfile.ZipInfo(entry, date_time=datetime.now(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED
    with archive.open(info, "w", force_zip64=True) as writer:
        digest = sha256_of(source, copy_to=writer)
    return digest, info.file_size


def sha256_of(source: Readable, copy_to: IO[bytes] | None = None) -> str:
    digest = hashlib.sha256()
    while chunk := source.read(COPY_BUFFER):
        digest.update(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return digest.hexdigest()


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value
