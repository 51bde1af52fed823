"""Where training stands, as the legacy status object (contract 2.15) plus progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from allcare.core.clock import now_utc, wire_time
from allcare.services.events import EventType, record_event
from allcare.services.models.registry import Source, Status
from allcare.store.db import Database, begin_write
from allcare.store.models import ModelVersion


def fail_run(
    db: Database,
    version_id: str,
    reason: str,
    *,
    cancelled: bool = False,
    unless_started: bool = False,
) -> bool:
    """Mark a run that is still ``training`` as failed (or cancelled) with its reason, and
    record the event. False if the run had already ended (nothing changes then), or, with
    ``unless_started``, if a worker has taken it meanwhile (it then stops on its own)."""
    with db.session() as session:
        begin_write(session)
        version = session.get(ModelVersion, version_id, with_for_update=True)
        if version is None or version.status != Status.TRAINING:
            return False
        if unless_started and version.worker_pid is not None:
            return False
        version.status = Status.FAILED.value
        version.error = reason
        version.finished_at = now_utc()
        version.progress = (version.progress or {}) | {
            "phase": "cancelled" if cancelled else "failed"
        }
        record_event(
            session,
            EventType.TRAINING_FAILED,
            f"Training {version_id} {'was ' if cancelled else 'failed: '}{reason}",
            version_id=version_id,
            error=reason,
            cancelled=cancelled,
        )
        session.commit()
    return True


def fail_silent_runs(db: Database, timeout_s: float) -> list[str]:
    """Fail the runs whose heartbeat stopped ``timeout_s`` ago: their worker, or the machine it
    ran on, is gone. Every API replica calls this now and then, so a run never stays
    ``training`` because the replica that started it was lost too."""
    horizon = now_utc() - timedelta(seconds=timeout_s)
    with db.session() as session:
        silent = [
            version.id
            for version in session.scalars(
                select(ModelVersion).where(ModelVersion.status == Status.TRAINING)
            )
            # A run no worker has taken yet (queued) sends no heartbeat: it waits, cancellable.
            if version.worker_pid is not None
            and (version.heartbeat_at or version.started_at or version.created_at) < horizon
        ]
    reason = f"the training worker sent no heartbeat for {timeout_s:.0f} s (worker or machine lost)"
    return [version_id for version_id in silent if fail_run(db, version_id, reason)]


def running_version(session: Session) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.status == Status.TRAINING).limit(1)
    )


@dataclass(frozen=True)
class Training:
    version_id: str
    started_at: str | None
    architecture: str | None
    phase: str | None
    epoch: int | None
    epochs: int | None
    fraction: float | None
    loss: float | None
    eta_seconds: float | None
    cancel_requested: bool


@dataclass(frozen=True)
class Promoting:
    """A candidate that passed the gate, until the serving process promoted it."""

    version_id: str
    started_at: str | None
    architecture: str | None


@dataclass(frozen=True)
class NotStarted:
    pass


@dataclass(frozen=True)
class Idle:
    last_retrain: str | None
    last_version: str
    last_accuracy: float | None
    last_outcome: str
    last_error: str | None


RunStatus = Training | Promoting | NotStarted | Idle


def run_status(session: Session) -> RunStatus:
    """Where training stands (the legacy status object of contract 2.15, with progress). A
    candidate that passed the gate still counts as running until it is promoted."""
    running = running_version(session)
    if running is not None:
        progress = running.progress or {}
        return Training(
            version_id=running.id,
            started_at=wire_time(running.started_at),
            architecture=running.architecture,
            phase=progress.get("phase"),
            epoch=progress.get("epoch"),
            epochs=progress.get("epochs"),
            fraction=progress.get("fraction"),
            loss=progress.get("loss"),
            eta_seconds=progress.get("eta_seconds"),
            cancel_requested=running.cancel_requested,
        )
    last = session.scalar(
        select(ModelVersion)
        .where(ModelVersion.source == Source.TRAINING)
        .order_by(ModelVersion.created_at.desc())
        .limit(1)
    )
    if last is None:
        return NotStarted()
    if last.status == Status.EVALUATING and (last.evaluation or {}).get("verdict") == "promote":
        return Promoting(last.id, wire_time(last.started_at), last.architecture)
    return Idle(
        last_retrain=wire_time(last.finished_at or last.started_at),
        last_version=last.id,
        last_accuracy=(last.metrics or {}).get("val_accuracy"),
        last_outcome=last.status,
        last_error=last.error,
    )
