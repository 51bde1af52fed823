"""Online backup and restore of one installation: every table and every file a row points to.

A backup reads all tables inside one snapshot transaction (REPEATABLE READ on PostgreSQL, a
WAL read transaction on SQLite), so it is consistent while the server keeps writing. Photos and
model files are immutable once their row is committed, so copying the ones the snapshot
references gives a matching set. The archive is a zip: ``manifest.json`` (format, schema
revision, row counts, sha256 of every file), ``db/<table>.jsonl`` and ``files/...``. Sealed data
stays sealed: the encryption key is not in the archive and must be kept apart.

Restore goes into an empty database (any of the two backends) and data directory: files are
written and verified first, then all rows in one transaction, then the schema is upgraded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, DateTime, Integer, LargeBinary, Table, func, insert, select, text

from allcare.core.durable import durable_path, durable_writer
from allcare.store.db import Database, begin_write, migration_config
from allcare.store.models import Base, BlobIntent, Counter, Image, ModelVersion, table_of

FORMAT = "allcare-backup/1"
MANIFEST = "manifest.json"
CHUNK_ROWS = 1000
COPY_BUFFER = 1 << 20
# Intents name files of uncommitted writes; a restored server has none in flight.
SKIPPED_TABLES = frozenset({BlobIntent.__tablename__})


class BackupError(RuntimeError):
    """The archive or the restore target is not usable; the message says why."""


@dataclass
class Places:
    """Where an installation keeps its files: ``blobs`` (photos) and ``models`` (the registry)."""

    blobs: Path
    models: Path

    def root(self, name: str) -> Path:
        return {"blobs": self.blobs, "models": self.models}[name]


@dataclass
class Report:
    revision: str
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    file_bytes: int = 0


def tables() -> list[Table]:
    """Parents before children, so inserts satisfy foreign keys."""
    return [t for t in Base.metadata.sorted_tables if t.name not in SKIPPED_TABLES]


def backup(db: Database, places: Places, out: Path) -> Report:
    with durable_path(out, make_parents=False) as partial, db.engine.connect() as connection:
        if not db.is_sqlite:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin(), zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            report = _write_archive(connection, places, archive)
    return report


def _write_archive(connection: Connection, places: Places, archive: zipfile.ZipFile) -> Report:
    revision = connection.scalar(text("SELECT version_num FROM alembic_version"))
    report = Report(revision=revision)
    for table in tables():
        with archive.open(f"db/{table.name}.jsonl", "w", force_zip64=True) as handle:
            report.rows[table.name] = _dump_rows(connection, table, handle)
    digests: dict[str, str] = {}
    for name, key in _referenced_files(connection):
        source = (places.root(name) / key).resolve()
        if not source.is_relative_to(places.root(name).resolve()):
            raise BackupError(f"A stored file key leaves its folder: {key!r}")
        entry = f"files/{name}/{key}"
        digests[entry] = _copy_in(source, archive, entry)
        report.files += 1
        report.file_bytes += source.stat().st_size
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


def _referenced_files(connection: Connection) -> Iterator[tuple[str, str]]:
    for key in connection.scalars(select(Image.blob_key).order_by(Image.id)):
        yield "blobs", key
    models = select(ModelVersion.file_key).where(ModelVersion.file_key.is_not(None))
    for file_key in connection.scalars(models.order_by(ModelVersion.id)):
        assert file_key is not None, "the query keeps versions with a file"
        yield "models", file_key


def _copy_in(source: Path, archive: zipfile.ZipFile, entry: str) -> str:
    """Photos and model weights do not compress; store them as they are."""
    info = zipfile.ZipInfo(entry, date_time=datetime.now(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED
    with source.open("rb") as reader, archive.open(info, "w", force_zip64=True) as writer:
        return _sha256(reader, copy_to=writer)


def restore(db: Database, places: Places, archive_path: Path) -> Report:
    try:
        opened = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile as exc:
        raise BackupError(f"{archive_path} is not an AllCare backup (not a zip archive)") from exc
    with opened as archive:
        manifest = _manifest(archive)
        _prepare_empty_schema(db, manifest["revision"])
        written: list[Path] = []
        try:
            report = Report(revision=manifest["revision"])
            for entry, digest in manifest["files"].items():
                written.append(_extract(archive, entry, digest, places))
                report.files += 1
                report.file_bytes += written[-1].stat().st_size
            report.rows = _load_rows(db, archive, manifest["rows"])
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
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


def _extract(archive: zipfile.ZipFile, entry: str, digest: str, places: Places) -> Path:
    """Streamed through a temp file in chunks: a model checkpoint is never held in memory."""
    _, name, key = entry.split("/", 2)
    root = places.root(name).resolve()
    target = (root / key).resolve()
    if not target.is_relative_to(root):
        raise BackupError(f"The backup names a file outside its folder: {entry!r}")
    damaged = BackupError(f"{entry} in the backup is damaged (sha256 differs)")
    try:
        if target.exists():
            with archive.open(entry) as source:
                if _sha256(source) != digest:
                    raise damaged
            with target.open("rb") as existing:
                if _sha256(existing) != digest:
                    raise BackupError(f"{target} already exists with other content")
            return target
        with archive.open(entry) as source, durable_writer(target) as handle:
            if _sha256(source, copy_to=handle) != digest:
                raise damaged
    except zipfile.BadZipFile as exc:
        raise BackupError(f"{entry} in the backup is damaged ({exc})") from exc
    return target


def _sha256(source: IO[bytes], copy_to: IO[bytes] | None = None) -> str:
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
