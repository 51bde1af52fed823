"""The store a process opens first: the migrated database and the key ring.

What CLI commands and the training worker need, without a signing secret or a model."""

from __future__ import annotations

import logging

from allcare.core.config import Settings
from allcare.store.crypto import Sealer
from allcare.store.db import Database
from allcare.store.private_files import make_private, wider_than_private

log = logging.getLogger(__name__)


def open_store(settings: Settings) -> tuple[Database, Sealer]:
    """Database (migrated, case counter in place) and key ring; files created owner-only."""
    sealer = Sealer.from_settings(settings)
    make_private()
    settings.storage_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = Database(settings.sqlalchemy_url)
    try:
        db.migrate()
        db.ensure_case_counter(settings.case_id_start)
    except Exception:
        db.dispose()
        raise
    return db, sealer


def warn_if_readable_by_others(settings: Settings) -> None:
    """Data written before files were made owner-only (or copied in) stays as it was: say so."""
    wider = wider_than_private(settings.storage_root)
    if wider.count:
        log.warning(
            "%d files or folders under %s can be read by other users (e.g. %s); patient data "
            "should be owner-only: chmod -R go-rwx %s",
            wider.count,
            settings.storage_root,
            ", ".join(str(path) for path in wider.examples),
            settings.storage_root,
        )
