"""Where training stands, as the legacy status object (contract 2.15) plus progress."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allcare.core.clock import now_utc, wire_time
from allcare.services.events import EventType, record_event
from allcare.services.registry import Source, Status
from allcare.store.db import Database, begin_write
from allcare.store.models import ModelVersion


def fail_run(db: Database, version_id: str, reason: str, *, cancelled: bool = False) -> bool:
    """Mark a run that is still ``training`` as failed (or cancelled) with its reason, and
    record the event. False if the run had already ended (nothing changes then)."""
    with db.session() as session:
        begin_write(session)
        version = session.get(ModelVersion, version_id, with_for_update=True)
        if version is None or version.status != Status.TRAINING:
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


def running_version(session: Session) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.status == Status.TRAINING).limit(1)
    )


def run_status(session: Session) -> dict[str, Any]:
    """The legacy retrain status object (contract 2.15), with the run's progress. A candidate
    that passed the gate still counts as running until the serving process promoted it."""
    running = running_version(session)
    if running is not None:
        progress = running.progress or {}
        return {
            "status": "training",
            "version_id": running.id,
            "started_at": wire_time(running.started_at),
            "architecture": running.architecture,
            "phase": progress.get("phase"),
            "epoch": progress.get("epoch"),
            "epochs": progress.get("epochs"),
            "fraction": progress.get("fraction"),
            "loss": progress.get("loss"),
            "eta_seconds": progress.get("eta_seconds"),
            "cancel_requested": running.cancel_requested,
        }
    last = session.scalar(
        select(ModelVersion)
        .where(ModelVersion.source == Source.TRAINING)
        .order_by(ModelVersion.created_at.desc())
        .limit(1)
    )
    if last is None:
        return {"status": "not_started", "last_retrain": None}
    if last.status == Status.EVALUATING and (last.evaluation or {}).get("verdict") == "promote":
        return {
            "status": "training",
            "version_id": last.id,
            "started_at": wire_time(last.started_at),
            "architecture": last.architecture,
            "phase": "promoting",
            "fraction": 1.0,
        }
    return {
        "status": "idle",
        "last_retrain": wire_time(last.finished_at or last.started_at),
        "last_version": last.id,
        "last_accuracy": (last.metrics or {}).get("val_accuracy"),
        "last_outcome": last.status,
        "last_error": last.error,
    }
