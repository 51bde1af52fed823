"""Starting, watching and finishing background training runs (one at a time).

A run is a ``training`` version in the registry with the exact labels it uses (D23), opened by
start_run.py under the training lock. It trains
in a separate worker process (cli/training_worker.py running learning/run.py) at a lower CPU
priority, so the API never blocks. The supervisor waits for the worker; when a worker dies
without recording an outcome the run is marked failed with the reason, and a candidate that
passed the promotion gate is promoted here, in the serving process, after it loaded
(models/deployment.py).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import func, select

from allcare.core.clock import now_utc
from allcare.core.config import Settings
from allcare.ml.optional import needs_torch
from allcare.services.errors import Conflict, NotFound, ServiceError, Unavailable
from allcare.services.labels import pool as label_pool
from allcare.services.labels.records import LabelOutcome
from allcare.services.learning.outcomes import RunSkipped, RunStarted, Triggered
from allcare.services.learning.start_run import open_run
from allcare.services.learning.status import (
    RunStatus,
    fail_run,
    fail_silent_runs,
    run_status,
    running_version,
)
from allcare.services.learning.worker_process import (
    alive,
    exit_reason,
    log_tail,
    start_worker_process,
)
from allcare.services.models.deployment import Deployment
from allcare.services.models.registry import Source, Status
from allcare.store.db import Database, begin_write, hold_lock
from allcare.store.job_queue import JobQueue
from allcare.store.models import ModelVersion

log = logging.getLogger(__name__)
TRAINING_LOCK = "lock:training"
CANCEL_GRACE_S = 60.0


@dataclass
class TrainingSupervisor:
    db: Database
    settings: Settings
    deployment: Deployment
    queue: JobQueue | None = None
    """The job system's queue (TRAINING_QUEUE=procrastinate); None runs training locally."""
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    last_auto_error: str | None = field(default=None, init=False)

    # -- starting ----------------------------------------------------------------------------

    def trigger(
        self, actor_id: str, architecture: str | None, force: bool, *, automatic: bool = False
    ) -> Triggered:
        missing = needs_torch("Retraining") if self.queue is None else None
        if missing:  # a job-system worker has PyTorch; this replica need not
            raise Unavailable(missing)
        with self._lock, self.db.session() as session:
            begin_write(session)
            hold_lock(session, TRAINING_LOCK)
            result = open_run(
                session,
                self.settings,
                actor_id,
                architecture,
                force,
                automatic=automatic,
                queued=self.queue is not None,
            )
            if isinstance(result, RunStarted):
                if self.queue is None:
                    self._spawn(result.version_id)
                else:
                    self._defer(result.version_id)
            return result

    def status(self) -> RunStatus:
        with self.db.session() as session:
            return run_status(session)

    def _defer(self, version_id: str) -> None:
        assert self.queue is not None
        try:
            job = self.queue.defer_training(version_id)
        except Exception as exc:  # the job system refused: the run must not wait forever
            self._fail(version_id, f"the job system did not take the run: {exc}")
            return
        log.info("Training %s queued as job %d for an `allcare worker`", version_id, job)

    def _spawn(self, version_id: str) -> None:
        try:
            worker = start_worker_process(self.settings, version_id)
        except OSError as exc:
            self._fail(version_id, f"the training worker could not start: {exc}")
            return
        self._workers[version_id] = worker
        threading.Thread(
            target=self._wait, args=(version_id, worker), name=f"wait-{version_id}", daemon=True
        ).start()
        log.info("Training %s started in worker process %d", version_id, worker.pid)

    # -- finishing -----------------------------------------------------------------------------

    def _wait(self, version_id: str, worker: subprocess.Popen[bytes]) -> None:
        code = worker.wait()
        self._workers.pop(version_id, None)
        try:
            self.finish(version_id, exit_reason(code))
        except Exception:
            # The database went away meanwhile: the next start-up's reconciliation (or the
            # heartbeat timeout) ends the run instead.
            log.exception("Could not record the end of training %s", version_id)

    def finish(self, version_id: str, exit_reason: str) -> None:
        """The worker is gone: record its death if it recorded nothing, apply a promotion the
        gate granted."""
        with self.db.session() as session:
            version = session.get(ModelVersion, version_id)
            if version is None:
                return
            if version.status == Status.TRAINING:
                tail = log_tail(self.settings, version_id)
                self._fail(version_id, f"the training worker {exit_reason}{tail}")
                return
            verdict = (version.evaluation or {}).get("verdict")
            pending = version.status == Status.EVALUATING and verdict == "promote"
        if pending:
            self._promote_candidate(version_id)
        self.maybe_start_automatically(f"after {version_id} ended")

    def _promote_candidate(self, version_id: str) -> None:
        try:
            self.deployment.promote(version_id, None, "passed the promotion gate", automatic=True)
        except Conflict:
            return  # another replica applied it first
        except ServiceError as exc:
            log.error("Automatic promotion of %s failed: %s", version_id, exc.detail)
            with self.db.session() as session:
                begin_write(session)
                version = session.get(ModelVersion, version_id, with_for_update=True)
                if version is not None:
                    version.evaluation = (version.evaluation or {}) | {
                        "verdict": "hold",
                        "promotion_error": exc.detail,
                    }
                    session.commit()

    def _fail(self, version_id: str, reason: str) -> None:
        if fail_run(self.db, version_id, reason):
            log.error("Training %s failed: %s", version_id, reason)

    def reconcile(self) -> None:
        """At start-up: runs whose worker is gone are failed; a worker still alive (from before
        a server restart) is watched until it ends; granted promotions are applied."""
        timeout = self.settings.training_heartbeat_timeout_s
        with self.db.session() as session:
            versions = list(
                session.scalars(
                    select(ModelVersion).where(
                        ModelVersion.status.in_([Status.TRAINING, Status.EVALUATING])
                    )
                )
            )
        for version in versions:
            if version.status == Status.EVALUATING:
                self.finish(version.id, "")
                continue
            beat = version.heartbeat_at or version.started_at or version.created_at
            fresh = (now_utc() - beat).total_seconds() < timeout
            here = version.worker_host in (None, socket.gethostname())
            if fresh and not here:
                continue  # another machine's worker: its heartbeat decides (fail_silent)
            if fresh and version.worker_pid and alive(version.worker_pid):
                threading.Thread(
                    target=self._watch_orphan,
                    args=(version.id, version.worker_pid),
                    name=f"watch-{version.id}",
                    daemon=True,
                ).start()
            else:
                self._fail(
                    version.id,
                    "the training worker stopped without finishing (server restart or crash)",
                )

    def apply_granted(self) -> None:
        """Promotions the gate granted to runs whose process ended away from the server that
        started it (a job-system worker, or a sibling process that died): any replica may apply
        one; the others then find it done."""
        with self.db.session() as session:
            granted = [
                version.id
                for version in session.scalars(
                    select(ModelVersion).where(ModelVersion.status == Status.EVALUATING)
                )
                if (version.evaluation or {}).get("verdict") == "promote"
            ]
        for version_id in granted:
            self.finish(version_id, "")

    def fail_silent(self) -> None:
        """Runs whose heartbeat stopped are failed (replicas: see status.fail_silent_runs)."""
        for version_id in fail_silent_runs(self.db, self.settings.training_heartbeat_timeout_s):
            log.error("Training %s failed: its worker sent no heartbeat", version_id)

    def _watch_orphan(self, version_id: str, pid: int) -> None:
        while alive(pid):
            time.sleep(2.0)
        self.finish(version_id, "ended while the server was restarting")

    # -- status and control --------------------------------------------------------------------

    def cancel(self, actor_id: str) -> str:
        """The run asked to stop (it stops after its current batch)."""
        with self.db.session() as session:
            begin_write(session)
            running = running_version(session)
            if running is None:
                raise NotFound("No training run in progress")
            running.cancel_requested = True
            running.progress = (running.progress or {}) | {"cancel_requested_by": actor_id}
            session.commit()
            version_id = running.id
        if self.queue is not None:  # still waiting for a worker: it ends now
            fail_run(
                self.db,
                version_id,
                f"cancelled by {actor_id} before a worker took it",
                cancelled=True,
                unless_started=True,
            )
        worker = self._workers.get(version_id)
        if worker is not None:
            timer = threading.Timer(CANCEL_GRACE_S, _stop_if_running, args=(worker,))
            timer.daemon = True
            timer.start()
        return version_id

    def after_label(self, outcome: LabelOutcome) -> None:
        """A new label may complete the batch that starts the next run."""
        self.maybe_start_automatically(f"after case {outcome.case_id} was labelled")

    def maybe_start_automatically(self, why: str) -> None:
        """Automatic retraining: once RETRAIN_MIN_NEW_LABELS unused labels arrived since the last
        run started (so a failed run is not retried on every new label), and none is running."""
        if not self.settings.retrain_auto:
            return
        with self.db.session() as session:
            if running_version(session) is not None:
                return
            last_start = session.scalar(
                select(func.max(ModelVersion.started_at)).where(
                    ModelVersion.source == Source.TRAINING
                )
            )
            fresh = label_pool.unused_label_ids(session, since=last_start)
        if len(fresh) < self.settings.retrain_min_new_labels:
            return
        try:
            result = self.trigger("system", None, force=False, automatic=True)
        except ServiceError as exc:
            self.last_auto_error = exc.detail
            log.warning("Automatic retraining %s not started: %s", why, exc.detail)
            return
        self.last_auto_error = result.reason if isinstance(result, RunSkipped) else None

    def close(self) -> None:
        """Workers keep running across a server restart; reconcile() picks them up again."""
        self._workers.clear()


def _stop_if_running(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.terminate()
