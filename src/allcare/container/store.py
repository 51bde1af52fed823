"""The store a process opens first: the migrated database and the key ring.

What CLI commands and the training worker need, without a signing secret or a model."""

from __future__ import annotations

import logging
from datetime import timedelta

from allcare.core.config import ConfigError, Settings
from allcare.store.blobs import BlobStore
from allcare.store.crypto import Sealer
from allcare.store.db import Database
from allcare.store.job_queue import JobQueue, JobQueueUnavailable
from allcare.store.objects import ObjectStoreUnavailable, open_object_store
from allcare.store.private_files import make_private, wider_than_private

log = logging.getLogger(__name__)


def open_store(settings: Settings) -> tuple[Database, Sealer]:
    """Database (migrated, case counter in place) and key ring; files created owner-only."""
    sealer = Sealer.from_settings(settings)
    make_private()
    settings.storage_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = database_of(settings)
    try:
        db.migrate()
        db.ensure_case_counter(settings.case_id_start)
    except Exception:
        db.dispose()
        raise
    return db, sealer


def database_of(settings: Settings) -> Database:
    """The configured database with its pool, not yet migrated."""
    return Database(
        settings.sqlalchemy_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )


def warn_if_pools_exceed_server(db: Database, processes: int) -> None:
    """``serve --workers N``: N full pools that do not fit PostgreSQL's max_connections fail
    requests under load ("too many clients") instead of at start: say so now."""
    limit = db.server_max_connections()
    wanted = processes * db.max_connections
    if limit is not None and wanted > limit:
        log.warning(
            "%d processes may open %d database connections each (DATABASE_POOL_SIZE + "
            "DATABASE_MAX_OVERFLOW), %d in all, but PostgreSQL allows max_connections=%d (for "
            "every replica, worker and psql together): lower DATABASE_MAX_OVERFLOW or raise "
            "max_connections",
            processes,
            db.max_connections,
            wanted,
            limit,
        )


def open_blobs(settings: Settings, db: Database, sealer: Sealer) -> BlobStore:
    """The photo store on the configured backend, checked reachable: a wrong bucket or key
    stops start-up with the reason instead of failing the first upload."""
    objects = open_object_store(settings)
    try:
        objects.check()
    except ObjectStoreUnavailable as exc:
        raise ConfigError(f"Object storage (BLOB_STORE_URL): {exc}") from exc
    return BlobStore(objects, sealer, db)


def intent_lease(settings: Settings, db: Database) -> timedelta | None:
    """None where this process is the only writer (SQLite: store/data_lock.py); otherwise the
    age past which an upload's intent is abandoned."""
    return None if db.is_sqlite else timedelta(seconds=settings.blob_intent_lease_s)


def open_job_queue(settings: Settings, db: Database) -> JobQueue | None:
    """The job system training runs go to (TRAINING_QUEUE=procrastinate), its tables in place;
    None for local training."""
    if settings.training_queue == "local":
        return None
    try:
        queue = JobQueue(db)
        queue.ensure_schema()
    except JobQueueUnavailable as exc:
        raise ConfigError(str(exc)) from exc
    return queue


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
