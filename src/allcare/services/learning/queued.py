"""A training run executed by a job-system worker (``allcare worker``, with
TRAINING_QUEUE=procrastinate).

The worker starts the same training process a local run uses and, when it ends, records what
its end means exactly as the API's supervisor does for a local run. Promotions the gate granted
are applied by the API replicas (services/learning/supervisor.py, ``apply_granted``): loading
the new model is serving work, and a worker has no engine.
"""

from __future__ import annotations

import logging

from allcare.core.config import Settings
from allcare.services.learning.status import fail_run
from allcare.services.learning.worker_process import exit_reason, log_tail, start_worker_process
from allcare.services.models.registry import Status
from allcare.store.db import Database
from allcare.store.models import ModelVersion

log = logging.getLogger(__name__)


def execute_queued_run(settings: Settings, db: Database, version_id: str) -> None:
    with db.session() as session:
        version = session.get(ModelVersion, version_id)
        status = version.status if version is not None else None
    if status != Status.TRAINING:
        log.warning("Training job for %s skipped: the run is %s", version_id, status or "unknown")
        return
    log.info("Training %s started on this worker", version_id)
    process = start_worker_process(settings, version_id, dies_with_parent=True)
    code = process.wait()
    reason = f"the training worker {exit_reason(code)}{log_tail(settings, version_id)}"
    if fail_run(db, version_id, reason):  # a no-op when the run recorded its own end
        log.error("Training %s failed: %s", version_id, reason)
    else:
        log.info("Training %s ended (%s)", version_id, exit_reason(code))


def close_lost_run(db: Database, version_id: str) -> None:
    """The job of a worker that was lost: its run, if still open, fails with that reason."""
    if version_id and fail_run(db, version_id, "its job-system worker was lost (no heartbeat)"):
        log.error("Training %s failed: its worker was lost", version_id)
