"""Online backup and restore of one installation: every table and every file a row points to.

A backup reads all tables inside one snapshot transaction (REPEATABLE READ on PostgreSQL, a
WAL read transaction on SQLite), so it is consistent while the server keeps writing. Photos and
model files are immutable once their row is committed, so copying the ones the snapshot
references gives a matching set; they are read from the object store (store/objects/), so a
backup covers the bucket as well as the local folder, and a restore may go into either. The
archive is a zip: ``manifest.json`` (format, schema
revision, row counts, sha256 of every file), ``db/<table>.jsonl`` and ``files/...``. Sealed data
stays sealed: the encryption key is not in the archive and must be kept apart.

Restore goes into an empty database (any of the two backends) and object store: files are
verified and stored first (create-only; one already there with the same bytes is kept), then all
rows in one transaction, then the schema is upgraded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, DateTime, Integer, LargeBinary, Table, func, insert, select, text

from allcare.core.durable import durable_path
from allcare.store.db import Database, begin_write, migration_config
from allcare.store.models import (
    Base,
    BlobIntent,
    Counter,
    Image,
    LoginFailure,
    ModelVersion,
    RateBucket,
    table_of,
)
from allcare.store.objects import (
    ObjectExists,
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
            with objects.open(_object_key(name, key)) as source:
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


def _object_key(name: str, key: str) -> str:
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
        digest = _sha256(source, copy_to=writer)
    return digest, info.file_size


def restore(db: Database, objects: ObjectStore, archive_path: Path) -> Report:
    try:
        opened = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile as exc:
        raise BackupError(f"{archive_path} is not an AllCare backup (not a zip archive)") from exc
    with opened as archive:
        manifest = _manifest(archive)
        _prepare_empty_schema(db, manifest["revision"])
        created: list[str] = []  # only these are removed if the restore fails
        try:
            report = Report(revision=manifest["revision"])
            for entry, digest in manifest["files"].items():
                report.file_bytes += _extract(archive, entry, digest, objects, created)
                report.files += 1
            report.rows = _load_rows(db, archive, manifest["rows"])
        except BaseException:
            for key in created:
                objects.delete(key)
            raise
    db.migrate()
    return report


def _manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except (KeyError, ValueError) as exc:
        raise BackupError("Not an AllCare backup (no readable manifest.json)") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"Unsupported backup format {manifest.get('format')!r}")
    try:
        ScriptDirectory.from_config(migration_config()).get_revision(manifest["revision"])
    except CommandError as exc:
        raise BackupError(
            f"The backup's schema revision {manifest['revision']} is unknown to this version "
            "of AllCare Server; restore it with the version that made it or a newer one"
        ) from exc
    return manifest


def _prepare_empty_schema(db: Database, revision: str) -> None:
    """The target must hold no data (a case counter from one start is fine); its schema is
    then set to the backup's revision, so the rows fit exactly."""
    current = db.revision()
    if current is not None:
        with db.engine.connect() as connection:
            for table in tables():
                if table.name == Counter.__tablename__:
                    continue
                if connection.scalar(select(func.count()).select_from(table)):
                    raise BackupError(
                        f"The target database is not empty (table {table.name} has rows); "
                        "restore into a new database"
                    )
        if current != revision:
            db.unmigrate()
    db.migrate(revision)


def _extract(
    archive: zipfile.ZipFile, entry: str, digest: str, objects: ObjectStore, created: list[str]
) -> int:
    """Verified in a private temp file first (a model checkpoint is never held in memory),
    then stored create-only; returns its size."""
    try:
        _, name, key = entry.split("/", 2)
    except ValueError:
        raise BackupError(f"The backup names a file outside its folders: {entry!r}") from None
    object_key = _object_key(name, key)
    with tempfile.TemporaryDirectory(prefix="allcare-restore-") as scratch:
        temp = Path(scratch) / "file"
        try:
            with archive.open(entry) as source, temp.open("wb") as handle:
                if _sha256(source, copy_to=handle) != digest:
                    raise BackupError(f"{entry} in the backup is damaged (sha256 differs)")
        except zipfile.BadZipFile as exc:
            raise BackupError(f"{entry} in the backup is damaged ({exc})") from exc
        existed = _exists(objects, object_key)
        try:
            objects.put_file_new(object_key, temp)
        except ObjectExists:
            raise BackupError(f"{object_key} already exists with other content") from None
        except ObjectStoreError as exc:
            raise BackupError(f"{object_key} could not be stored: {exc}") from exc
        if not existed:
            created.append(object_key)
        return temp.stat().st_size


def _exists(objects: ObjectStore, key: str) -> bool:
    try:
        objects.size(key)
    except ObjectStoreError:
        return False
    return True


def _sha256(source: Readable, copy_to: IO[bytes] | None = None) -> str:
    digest = hashlib.sha256()
    while chunk := source.read(COPY_BUFFER):
        digest.update(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return digest.hexdigest()


def _load_rows(db: Database, archive: zipfile.ZipFile, expected: dict[str, int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    with db.session() as session:
        begin_write(session)
        connection = session.connection()
        connection.execute(table_of(Counter).delete())
        for table in tables():
            counts[table.name] = _insert_rows(connection, archive, table)
            if counts[table.name] != expected.get(table.name, 0):
                raise BackupError(
                    f"Table {table.name}: {counts[table.name]} rows, manifest says "
                    f"{expected.get(table.name, 0)}"
                )
            _advance_sequence(connection, table)
        session.commit()
    return counts


def _insert_rows(connection: Connection, archive: zipfile.ZipFile, table: Table) -> int:
    entry = f"db/{table.name}.jsonl"
    if entry not in archive.namelist():
        return 0
    decoders = {column.name: _decoder(column.type) for column in table.columns}
    count, chunk = 0, []
    with archive.open(entry) as handle:
        for line in handle:
            record = json.loads(line)
            chunk.append({name: decoders[name](value) for name, value in record.items()})
            if len(chunk) == CHUNK_ROWS:
                connection.execute(insert(table), chunk)
                count, chunk = count + len(chunk), []
    if chunk:
        connection.execute(insert(table), chunk)
        count += len(chunk)
    return count


def _advance_sequence(connection: Connection, table: Table) -> None:
    """PostgreSQL serial ids continue after the restored ones (SQLite needs nothing)."""
    if connection.dialect.name != "postgresql":
        return
    key = list(table.primary_key.columns)
    if len(key) != 1 or not isinstance(key[0].type, Integer):
        return
    connection.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{key[0].name}'), "  # noqa: S608 - our own table names
            f"COALESCE((SELECT MAX({key[0].name}) FROM {table.name}), 0) + 1, false)"
        )
    )


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


def _decoder(column_type: object) -> Callable[[Any], Any]:
    kind = getattr(column_type, "impl", column_type)
    if isinstance(kind, DateTime):
        return lambda value: None if value is None else datetime.fromisoformat(value)
    if isinstance(kind, LargeBinary):
        return lambda value: None if value is None else base64.b64decode(value)
    return lambda value: value
