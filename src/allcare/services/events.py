"""The learning loop's audit log: every step (a label, a trigger, a run's end, a promotion) is
an event with who, when and its numbers, written in the transaction of the step itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allcare.core.clock import wire_time
from allcare.store.models import Event


class EventType(StrEnum):
    LABEL_ADDED = "label_added"
    THRESHOLD_REACHED = "threshold_reached"
    RETRAIN_TRIGGERED = "retrain_triggered"
    TRAINING_COMPLETED = "training_completed"
    TRAINING_FAILED = "training_failed"
    CANDIDATE_REJECTED = "candidate_rejected"
    MODEL_PROMOTED = "model_promoted"
    MODEL_ROLLBACK = "model_rollback"
    MODEL_ACTIVATED = "model_activated"
    MODEL_REGISTERED = "model_registered"
    CONFIG_UPDATED = "config_updated"


def record_event(
    session: Session,
    kind: EventType,
    message: str,
    *,
    actor_id: str | None = None,
    **details: Any,
) -> None:
    """Part of the caller's transaction: the event exists exactly when the step committed."""
    session.add(Event(type=kind.value, message=message, actor_id=actor_id, details=details))


@dataclass(frozen=True)
class EventRecord:
    timestamp: str | None
    type: str
    message: str
    actor: str | None
    metadata: dict[str, Any] | None


def list_events(
    session: Session, *, limit: int, kind: str | None = None, since: datetime | None = None
) -> list[EventRecord]:
    query = select(Event).order_by(Event.at.desc(), Event.id.desc()).limit(limit)
    if kind:
        query = query.where(Event.type == kind)
    if since is not None:
        query = query.where(Event.at >= since)
    return [
        EventRecord(wire_time(event.at), event.type, event.message, event.actor_id, event.details)
        for event in session.scalars(query)
    ]
