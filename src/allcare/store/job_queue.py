"""The job system for training runs: procrastinate on the same PostgreSQL (no new server).

The API defers one job per run (``allcare.train`` on the ``training`` queue); ``allcare
worker`` processes, on any machine that reaches the database and the bucket, take them one at
a time. procrastinate brings the parts a home-made queue would get wrong: a job is taken by one
worker only (``FOR UPDATE SKIP LOCKED``), worker heartbeats, stalled-worker detection, and
no broker timeout that an hour-long run could trip (a job stays ``doing`` as long as it runs).
The run's own state (progress, cancellation, failure) stays in ``model_versions``, written by
the training process itself, so the admin sees the same thing whichever queue ran it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import make_url

from allcare.store.db import Database

log = logging.getLogger(__name__)

QUEUE = "training"
TASK = "allcare.train"
SCHEMA_LOCK = 0x41_4C_43_51  # "ALCQ": one process applies the schema, the others wait


class JobQueueUnavailable(RuntimeError):
    """The job system cannot be used; the message says why."""


@dataclass(frozen=True)
class QueueState:
    queued: int
    running: int
    workers: int
    """Workers whose heartbeat is recent (procrastinate prunes the others)."""
    heartbeat_age_s: float | None
    """Seconds since the freshest worker heartbeat; None when no worker ever reported."""


class JobQueue:
    def __init__(self, db: Database) -> None:
        if db.is_sqlite:
            raise JobQueueUnavailable(
                "TRAINING_QUEUE=procrastinate needs PostgreSQL (DATABASE_URL=postgresql://...)"
            )
        self._db = db
        self.conninfo = libpq_url(db.url)

    def ensure_schema(self) -> None:
        """procrastinate's tables, created once (under a lock: replicas start together)."""
        from procrastinate.schema import SchemaManager

        with self._db.engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
            present = connection.scalar(text("SELECT to_regclass('procrastinate_jobs')"))
            if present is None:
                connection.exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))
                log.info("Created the job system's tables (procrastinate)")

    def defer_training(self, version_id: str) -> int:
        """The run's job; returns its id."""
        from procrastinate import App, SyncPsycopgConnector

        app = App(connector=SyncPsycopgConnector(conninfo=self.conninfo))
        with app.open():
            job_id: int = app.configure_task(TASK, queue=QUEUE).defer(version_id=version_id)
        return job_id

    def state(self) -> QueueState:
        with self._db.engine.connect() as connection:
            counts: dict[str, int] = dict(
                connection.execute(
                    text(
                        "SELECT status::text, count(*) FROM procrastinate_jobs "
                        "WHERE queue_name = :queue AND status IN ('todo', 'doing') GROUP BY 1"
                    ),
                    {"queue": QUEUE},
                ).all()
            )
            workers, age = connection.execute(
                text(
                    "SELECT count(*), extract(epoch FROM now() - max(last_heartbeat)) "
                    "FROM procrastinate_workers"
                )
            ).one()
        return QueueState(
            queued=int(counts.get("todo", 0)),
            running=int(counts.get("doing", 0)),
            workers=int(workers),
            heartbeat_age_s=None if age is None else float(age),
        )

    def run_worker(
        self,
        execute: Callable[[str], None],
        *,
        name: str,
        heartbeat_s: float,
        stalled_after_s: float,
        on_stalled: Callable[[str], None],
    ) -> None:
        """Take training jobs until SIGINT/SIGTERM (which let the current run finish its
        batch first: the training process stops on its own cancellation or is killed)."""
        from procrastinate import App, PsycopgConnector
        from procrastinate.jobs import Status

        app = App(connector=PsycopgConnector(conninfo=self.conninfo))

        @app.task(name=TASK, queue=QUEUE)
        def train(version_id: str) -> None:
            execute(version_id)

        async def work() -> None:
            async with app.open_async():
                # Jobs of workers whose heartbeat stopped (SIGKILL, a machine lost): their run
                # was failed by the API's heartbeat check; the job is closed as failed too.
                for job in await app.job_manager.get_stalled_jobs(
                    queue=QUEUE, seconds_since_heartbeat=stalled_after_s
                ):
                    version_id = str(job.task_kwargs.get("version_id", ""))
                    on_stalled(version_id)
                    await app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)
                    log.warning("Closed job %s of a lost worker (run %s)", job.id, version_id)
                await app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=1,
                    name=name,
                    update_heartbeat_interval=heartbeat_s,
                    stalled_worker_timeout=stalled_after_s,
                )

        import asyncio

        asyncio.run(work())


def libpq_url(sqlalchemy_url: str) -> str:
    """The database URL as libpq reads it (procrastinate's psycopg connector)."""
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
