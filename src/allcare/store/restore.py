"""Restore of a backup (store/backup.py) into an empty database (either backend) and object
store: files are verified and stored first (create-only; one already there with the same bytes
is kept), then all rows in one transaction, then the schema is upgraded."""

from __future__ import annotations

import base64
import json
import tempfile
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, DateTime, Integer, LargeBinary, Table, func, insert, select, text

from allcare.store.backup import (
    CHUNK_ROWS,
    FORMAT,
    MANIFEST,
    BackupError,
    Report,
    object_key,
    sha256_of,
    tables,
)
from allcare.store.db import Database, begin_write, migration_config
from allcare.store.models import (
    Counter,
    table_of,
)
from allcare.store.objects import (
    ObjectExists,
    ObjectStore,
    ObjectStoreError,
)


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
    target = object_key(name, key)
    with tempfile.TemporaryDirectory(prefix="allcare-restore-") as scratch:
        temp = Path(scratch) / "file"
        try:
            with archive.open(entry) as source, temp.open("wb") as handle:
                if sha256_of(source, copy_to=handle) != digest:
                    raise BackupError(f"{entry} in the backup is damaged (sha256 differs)")
        except zipfile.BadZipFile as exc:
            raise BackupError(f"{entry} in the backup is damaged ({exc})") from exc
        existed = _exists(objects, target)
        try:
            objects.put_file_new(target, temp)
        except ObjectExists:
            raise BackupError(f"{target} already exists with other content") from None
        except ObjectStoreError as exc:
            raise BackupError(f"{target} could not be stored: {exc}") from exc
        if not existed:
            created.append(target)
        return temp.stat().st_size


def _exists(objects: ObjectStore, key: str) -> bool:
    try:
        objects.size(key)
    except ObjectStoreError:
        return False
    return True


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


def _decoder(column_type: object) -> Callable[[Any], Any]:
    kind = getattr(column_type, "impl", column_type)
    if isinstance(kind, DateTime):
        return lambda value: None if value is None else datetime.fromisoformat(value)
    if isinstance(kind, LargeBinary):
        return lambda value: None if value is None else base64.b64decode(value)
    return lambda value: value
