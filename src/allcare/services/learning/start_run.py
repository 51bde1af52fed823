"""A training run's start: the registry row with its labels, configuration and evaluation set,
and the audit event, in the caller's transaction (one run at a time: the caller holds the
training lock)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allcare.core.clock import now_utc
from allcare.core.config import Settings
from allcare.services.errors import InvalidInput
from allcare.services.events import EventType, record_event
from allcare.services.labels import pool as label_pool
from allcare.services.learning import config as training_config
from allcare.services.learning import evaluation_set
from allcare.services.learning.architecture_choice import base_model
from allcare.services.learning.outcomes import RunSkipped, RunStarted, SkipReason, Triggered
from allcare.services.learning.status import running_version
from allcare.services.models.registry import Source, Status, new_version_id
from allcare.store.models import Case, Image, ModelVersion, TrainingLabel


def open_run(
    session: Session,
    settings: Settings,
    actor_id: str,
    architecture: str | None,
    force: bool,
    *,
    automatic: bool,
    queued: bool,
) -> Triggered:
    """Skipped (one is running, too few new labels) or started: committed, for the caller to
    hand to a worker."""
    running = running_version(session)
    if running is not None:
        return RunSkipped(SkipReason.ALREADY_RUNNING, version_id=running.id)
    new_ids = label_pool.unused_label_ids(session)
    threshold = settings.retrain_min_new_labels
    if len(new_ids) < threshold and not force:
        return RunSkipped(
            SkipReason.BELOW_THRESHOLD, current_labels=len(new_ids), threshold=threshold
        )
    # New labels decide when a run starts; it trains on every trainable label.
    label_ids = label_pool.training_label_ids(session)
    images = _image_count(session, label_ids)
    if images < 2:
        raise InvalidInput(
            f"{len(label_ids)} trainable labels with {images} stored photos: training "
            "needs at least 2 labelled photos"
        )
    base = base_model(session, architecture)
    config = training_config.current(session, settings)
    eval_set = evaluation_set.snapshot(session)
    eval_summary = evaluation_set.summary(eval_set)
    version = ModelVersion(
        id=new_version_id(session),
        status=Status.TRAINING.value,
        source=Source.TRAINING.value,
        architecture=base.architecture,
        base_version=base.id,
        training_config=config,
        metrics={},
        progress={"phase": "queued" if queued else "starting", "fraction": 0.0},
        eval_set=eval_set,
        triggered_by=actor_id,
        started_at=now_utc(),
        heartbeat_at=now_utc(),
    )
    session.add(version)
    session.flush()
    session.add_all(TrainingLabel(version_id=version.id, label_id=i) for i in label_ids)
    record_event(
        session,
        EventType.RETRAIN_TRIGGERED,
        f"{'Automatic retraining' if automatic else f'Retraining by {actor_id}'}: "
        f"{version.id} ({base.architecture}) from {base.id} on {len(label_ids)} labels "
        f"({len(new_ids)} new); judged on {eval_summary.cases} {eval_summary.source}"
        " evaluation cases",
        actor_id=actor_id,
        version_id=version.id,
        architecture=base.architecture,
        base_version=base.id,
        labels=len(label_ids),
        new_labels=len(new_ids),
        images=images,
        automatic=automatic,
        forced=force and len(new_ids) < threshold,
        config=config,
        evaluation_set=eval_summary.record(),
    )
    session.commit()
    return RunStarted(
        version_id=version.id,
        architecture=base.architecture or "",
        base_model=base.id,
        new_samples=len(new_ids),
        labels_used=len(label_ids),
        samples_used=images,
        evaluation_set=eval_summary,
    )


def _image_count(session: Session, label_ids: list[int]) -> int:
    if not label_ids:
        return 0
    query = (
        select(func.count(Image.id))
        .join(Case, Case.id == Image.case_id)
        .where(Case.current_label_id.in_(label_ids))
    )
    return session.scalar(query) or 0
