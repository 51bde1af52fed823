"""Accounts at start-up: the legacy USERS_FILE imported, and a hint when there are none."""

from __future__ import annotations

import logging

from allcare.core.config import ConfigError, Settings
from allcare.services.accounts.users import has_accounts, import_legacy_users
from allcare.services.errors import InvalidInput
from allcare.store.db import Database

log = logging.getLogger(__name__)


def import_users_file(settings: Settings, db: Database) -> None:
    path = settings.users_file
    if path is None:
        return
    if not path.exists():
        raise ConfigError(f"USERS_FILE {path} does not exist")
    with db.session() as session:
        try:
            report = import_legacy_users(session, path)
        except InvalidInput as exc:
            raise ConfigError(exc.detail) from exc
    log.info(
        "USERS_FILE %s: %d added, %d already present, %d invalid",
        path,
        len(report.added),
        len(report.kept_existing),
        len(report.invalid),
    )


def hint_if_no_accounts(db: Database) -> None:
    with db.session() as session:
        if not has_accounts(session):
            log.warning(
                "No user accounts yet: create one with "
                "`allcare users add <id> --role admin` (or set USERS_FILE)"
            )
