"""The training configuration an administrator sets (contract 2.17, 2.18, 3.8).

Stored in the database; what the admin sets is what training uses (D21): the RETRAIN_DEFAULT_*
settings only give the defaults. A change merges into the current configuration.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from allcare.core.clock import now_utc
from allcare.core.config import Settings
from allcare.ml.training_config import TrainingConfig
from allcare.services.errors import InvalidInput
from allcare.services.events import EventType, record_event
from allcare.store.db import begin_write
from allcare.store.models import AppSetting

CONFIG_KEY = "training_config"


def defaults(settings: Settings) -> dict[str, Any]:
    """ml/training_config.py's ``TrainingConfig`` defaults with the RETRAIN_DEFAULT_* settings."""
    wire = TrainingConfig(
        epochs=settings.retrain_default_epochs,
        batch_size=settings.retrain_default_batch_size,
        min_steps=settings.retrain_min_steps,
        melanoma_weight=settings.retrain_melanoma_weight,
    ).to_wire()
    del wire["ema"]  # retraining never averages (README, "The first model")
    return wire


def current(session: Session, settings: Settings) -> dict[str, Any]:
    stored = session.get(AppSetting, CONFIG_KEY)
    return defaults(settings) | (stored.value if stored else {})


def update(
    session: Session, settings: Settings, changes: dict[str, Any], actor_id: str
) -> dict[str, Any]:
    if not changes:
        raise InvalidInput("No configuration values provided")
    begin_write(session)
    stored = session.get(AppSetting, CONFIG_KEY, with_for_update=True)
    merged = (stored.value if stored else {}) | changes
    if stored is None:
        session.add(AppSetting(key=CONFIG_KEY, value=merged, updated_by=actor_id))
    else:
        stored.value = merged
        stored.updated_at = now_utc()
        stored.updated_by = actor_id
    record_event(
        session,
        EventType.CONFIG_UPDATED,
        f"Training configuration updated by {actor_id}: {', '.join(sorted(changes))}",
        actor_id=actor_id,
        changes=changes,
    )
    session.commit()
    return defaults(settings) | merged
