"""``allcare migrate``: moving a clinic over from the old backserver."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from allcare.cli.common import cli_store, fail
from allcare.core.config import ConfigError
from allcare.store.crypto import parse_key

if TYPE_CHECKING:
    from allcare.services.migration.legacy_reader import LegacyTree


def migrate(
    source: Annotated[Path, typer.Option("--from", help="The old backserver folder.")],
    storage_root: Annotated[
        Path | None, typer.Option(help="Its storage folder (default: FROM/storage).")
    ] = None,
    al_back: Annotated[Path | None, typer.Option(help="Its AL_Back folder.")] = None,
    key_from_stdin: Annotated[
        bool,
        typer.Option(
            "--data-encryption-key-stdin",
            help="Read its DATA_ENCRYPTION_KEY (for encrypted records and photos) from standard "
            "input. Or set LEGACY_DATA_ENCRYPTION_KEY; default: this server's key.",
        ),
    ] = False,
    key_on_argv: Annotated[str | None, typer.Option("--data-encryption-key", hidden=True)] = None,
    default_user: Annotated[
        str, typer.Option(help="Owner of old global records without a user_id.")
    ] = "user001",
    dry_run: Annotated[bool, typer.Option(help="Report what would happen; write nothing.")] = False,
) -> None:
    """Import an old AllCare backserver: accounts, cases, photos, labels, models, events."""
    from allcare.container import open_blobs
    from allcare.services.migration import learning as migration_learning
    from allcare.services.migration.importer import Migration
    from allcare.services.migration.legacy_reader import LegacyTree

    if key_on_argv is not None:
        raise fail(
            "a key on the command line is visible in `ps` and the shell history: set "
            "LEGACY_DATA_ENCRYPTION_KEY or pipe the key to --data-encryption-key-stdin"
        )
    if not source.is_dir():
        raise fail(f"{source} is not a folder")
    legacy_key = sys.stdin.readline().strip() if key_from_stdin else None
    legacy_key = legacy_key or os.environ.get("LEGACY_DATA_ENCRYPTION_KEY") or None
    with cli_store() as (settings, db, sealer):
        try:
            key_text = legacy_key or (
                settings.data_encryption_key.get_secret_value()
                if settings.data_encryption_key
                else None
            )
            key = parse_key(key_text, "the old server's key") if key_text else None
        except ConfigError as exc:
            raise fail(str(exc)) from exc
        tree = LegacyTree(
            source, storage_root=storage_root, al_back=al_back, key=key, default_user=default_user
        )
        try:
            blobs = open_blobs(settings, db, sealer)
        except ConfigError as exc:
            raise fail(str(exc)) from exc
        with typer.progressbar(length=_size(tree), label="Importing") as bar:
            job = Migration(
                db,
                sealer,
                blobs,
                tree,
                settings.eval_holdout_share,
                dry_run=dry_run,
                progress=lambda _what: bar.update(1),
            )
            with db.session() as session:
                migration_learning.run(job, settings, session)
                if dry_run:
                    session.rollback()
        typer.echo("\n".join(job.report.lines()))


def _size(tree: LegacyTree) -> int:
    """Work units for the progress bar: one per case group and model."""
    from allcare.services.migration.legacy_reader import Record

    keys = {(r.owner, str(r.data.get("case_id"))) for r in tree.records() if isinstance(r, Record)}
    registry = tree.model_list()
    models = len(registry.get("models") or {}) if isinstance(registry, dict) else 0
    return max(1, len(keys) + models)
