"""``allcare backup`` and ``allcare restore``: the database and every stored file (local folder
or bucket) in one archive."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from allcare.cli.common import data_settings, fail
from allcare.container import open_store
from allcare.core.config import ConfigError
from allcare.store.backup import BackupError, Report, backup, restore
from allcare.store.data_lock import single_writer
from allcare.store.db import Database
from allcare.store.objects import ObjectStoreError, open_object_store
from allcare.store.private_files import make_private


def backup_command(
    out: Annotated[Path, typer.Option("--out", help="Archive to write (.zip)")],
) -> None:
    """Write a consistent snapshot while the server keeps serving."""
    settings = data_settings()
    db, _ = open_store(settings)
    try:
        report = backup(db, open_object_store(settings), out)
    except (BackupError, ObjectStoreError) as exc:
        raise fail(str(exc)) from exc
    finally:
        db.dispose()
    out.chmod(0o600)  # patient data: owner-only even where the archive already existed
    _print(f"Backed up to {out}", report)
    typer.echo("The encryption key (DATA_ENCRYPTION_KEY) is not in the archive: keep it apart.")


def restore_command(
    archive: Annotated[Path, typer.Argument(help="Archive written by `allcare backup`")],
) -> None:
    """Restore into an empty database and data directory (stop the server first)."""
    if not archive.is_file():
        raise fail(f"{archive} does not exist")
    settings = data_settings()
    make_private()
    settings.storage_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with single_writer(settings, "restoring a backup"):
            db = Database(settings.sqlalchemy_url)
            try:
                report = restore(db, open_object_store(settings), archive)
            finally:
                db.dispose()
    except (BackupError, ConfigError, ObjectStoreError) as exc:
        raise fail(str(exc)) from exc
    _print(f"Restored {archive}", report)


def _print(headline: str, report: Report) -> None:
    typer.echo(
        f"{headline}: schema {report.revision}, {report.files} files "
        f"({report.file_bytes / 1e6:.1f} MB)"
    )
    for table, rows in report.rows.items():
        typer.echo(f"  {table}: {rows} rows")
