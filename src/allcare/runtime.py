"""Everything a running server or CLI command holds, built once from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from allcare.core.config import ConfigError, Settings
from allcare.core.tokens import TokenCodec, resolve_jwt_secret
from allcare.services.errors import InvalidInput
from allcare.services.users import import_legacy_users
from allcare.store.blobs import BlobStore
from allcare.store.crypto import Sealer
from allcare.store.db import Database
from allcare.store.models import User

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    sealer: Sealer
    blobs: BlobStore
    tokens: TokenCodec

    @classmethod
    def open_store(cls, settings: Settings) -> tuple[Database, Sealer]:
        """Database (migrated) and key ring: what CLI commands need, without a signing secret."""
        sealer = Sealer.from_settings(settings)
        settings.storage_root.mkdir(parents=True, exist_ok=True)
        db = Database(settings.sqlalchemy_url)
        try:
            db.migrate()
            db.ensure_case_counter(settings.case_id_start)
        except Exception:
            db.dispose()
            raise
        return db, sealer

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
            raise ConfigError("Set both TLS_CERT_FILE and TLS_KEY_FILE for HTTPS, or neither")
        tokens = TokenCodec(
            resolve_jwt_secret(settings),
            settings.jwt_algorithm,
            timedelta(hours=settings.jwt_expiration_hours),
        )
        db, sealer = cls.open_store(settings)
        blobs = BlobStore(settings.storage_root / "blobs", sealer, db)
        blobs.recover()
        runtime = cls(settings=settings, db=db, sealer=sealer, blobs=blobs, tokens=tokens)
        runtime._import_users_file()
        runtime._hint_if_no_accounts()
        log.info(
            "AllCare Server ready: database %s, storage %s, encryption %s",
            "sqlite" if db.is_sqlite else "postgresql",
            settings.storage_root,
            "on" if sealer.encrypting else "off",
        )
        return runtime

    def _import_users_file(self) -> None:
        path = self.settings.users_file
        if path is None:
            return
        if not path.exists():
            raise ConfigError(f"USERS_FILE {path} does not exist")
        with self.db.session() as session:
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

    def _hint_if_no_accounts(self) -> None:
        with self.db.session() as session:
            if session.scalar(select(User.id).limit(1)) is None:
                log.warning(
                    "No user accounts yet: create one with "
                    "`allcare users add <id> --role admin` (or set USERS_FILE)"
                )

    def close(self) -> None:
        self.db.dispose()
