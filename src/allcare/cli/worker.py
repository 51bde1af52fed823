"""``allcare worker``: a training worker of the job system (TRAINING_QUEUE=procrastinate)."""

from __future__ import annotations

import socket

from allcare.cli.common import data_settings, fail
from allcare.container import open_blobs, open_store
from allcare.core.config import ConfigError
from allcare.core.logging import configure_logging
from allcare.ml.optional import needs_torch
from allcare.services.learning.queued import close_lost_run, execute_queued_run
from allcare.store.job_queue import JobQueue, JobQueueUnavailable

HEARTBEAT_S = 10.0
STALLED_AFTER_S = 30.0


def worker() -> None:
    """Take training runs from the job system and execute them, one at a time, until stopped.

    Runs on any machine that reaches the database (DATABASE_URL, PostgreSQL) and the object
    storage (BLOB_STORE_URL): a GPU machine in practice. Needs PyTorch (the train extra) and the
    API's settings: TRAINING_QUEUE=procrastinate, DATA_ENCRYPTION_KEY when photos are sealed.
    SIGINT or SIGTERM stop it after the current run; docs/deployment.md shows a systemd unit.
    """
    settings = data_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.training_queue != "procrastinate":
        raise fail(
            "TRAINING_QUEUE is 'local': the API trains in its own child processes and no worker "
            "is needed. Set TRAINING_QUEUE=procrastinate on the API and the workers to use one"
        )
    missing = needs_torch("A training worker")
    if missing:
        raise fail(missing)
    db, sealer = open_store(settings)
    try:
        open_blobs(settings, db, sealer)  # the bucket answers: a run would need it
        queue = JobQueue(db)
        queue.ensure_schema()
        queue.run_worker(
            lambda version_id: execute_queued_run(settings, db, version_id),
            name=socket.gethostname(),
            heartbeat_s=HEARTBEAT_S,
            stalled_after_s=STALLED_AFTER_S,
            on_stalled=lambda version_id: close_lost_run(db, version_id),
        )
    except (ConfigError, JobQueueUnavailable) as exc:
        raise fail(str(exc)) from exc
    finally:
        db.dispose()
