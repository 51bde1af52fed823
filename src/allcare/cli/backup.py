"""``allcare backup`` and ``allcare restore``: the database and every stored file (local folder
or bucket) in one archive."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from allcare.cli.common import data_settings, fail
from allcare.container import database_of, open_store
from allcare.core.config import ConfigError
from allcare.store.backup import BackupError, Report, backup, referenced_files
from allcare.store.bucket_move import MoveError, move_to_bucket
from allcare.store.data_lock import single_writer
from allcare.store.objects import ObjectStoreError, open_object_store
from allcare.store.private_files import make_private
from allcare.store.restore import restore


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
            db = database_of(settings)
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


def move_to_bucket_command() -> None:
    """Copy the photos and model files under STORAGE_ROOT into the bucket BLOB_STORE_URL names.

    Resumable: run it again after an interruption, and once more with the server stopped (it
    copies only what is new), then start the server with BLOB_STORE_URL set. Every copy is read
    back and its sha256 checked. The local files stay; remove them once the server runs on the
    bucket.
    """
    settings = data_settings()
    if not settings.blob_store_url:
        raise fail(
            "Set BLOB_STORE_URL=s3://bucket/prefix (and S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY) to the bucket to move into"
        )
    local = open_object_store(settings.model_copy(update={"blob_store_url": None}))
    db, _ = open_store(settings)
    try:
        bucket = open_object_store(settings)
        bucket.check()
        with db.engine.connect() as connection:
            total = sum(1 for _ in referenced_files(connection))
        with typer.progressbar(length=total, label=f"Copying into {bucket.describe()}") as bar:
            report = move_to_bucket(db, local, bucket, progress=lambda _key: bar.update(1))
    except (MoveError, ObjectStoreError) as exc:
        raise fail(str(exc)) from exc
    finally:
        db.dispose()
    typer.echo(
        f"{report.total} files in {bucket.describe()}, each sha256-checked: {report.copied} "
        f"copied ({report.copied_bytes / 1e6:.1f} MB), {report.already_there} already there"
    )
