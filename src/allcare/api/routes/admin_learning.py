"""/admin training configuration, retraining, events and labels (2.17-2.18, 2.28-2.33), and the
legacy /model routes (2.15-2.16)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from allcare.api.deps import AdminDep, ContainerDep, PrincipalDep, SessionDep
from allcare.api.schemas.admin import TrainingConfigIn, TriggerIn
from allcare.api.schemas.admin_learning import (
    ArchitecturesOut,
    CancelOut,
    EventOut,
    EventsOut,
    LabelCountOut,
    LabelsOut,
    LegacyRetrainOut,
    PoolEntryOut,
    RetrainStatusOut,
    RunStatusOut,
    ThresholdOut,
    TrainingConfigOut,
    TrainingConfigSetOut,
    TriggerOut,
    legacy_retrain_out,
    run_status_out,
    trigger_out,
)
from allcare.api.schemas.common import IsoDateTime, errors
from allcare.core.clock import aware
from allcare.services.errors import Forbidden
from allcare.services.events import list_events
from allcare.services.labels import pool as label_pool
from allcare.services.learning import config as training_config
from allcare.services.learning.architecture_choice import architectures, default_architecture
from allcare.services.principal import Role

router = APIRouter(tags=["admin: learning"])


@router.get(
    "/admin/training-config",
    summary="The training configuration and its defaults",
    responses=errors(401, 403),
    response_model=TrainingConfigOut,
)
def get_training_config(
    _: AdminDep, session: SessionDep, container: ContainerDep
) -> TrainingConfigOut:
    """What the next run will use, and the server's defaults (RETRAIN_* settings)."""
    return TrainingConfigOut(
        config=training_config.current(session, container.settings),
        defaults=training_config.defaults(container.settings),
    )


@router.post(
    "/admin/training-config",
    summary="Change the training configuration",
    responses=errors(400, 401, 403, 413),
    response_model=TrainingConfigSetOut,
)
def set_training_config(
    body: TrainingConfigIn, admin: AdminDep, session: SessionDep, container: ContainerDep
) -> TrainingConfigSetOut:
    """Merge the given values into the stored configuration; audited."""
    changes = body.model_dump(exclude_none=True)
    config = training_config.update(session, container.settings, changes, admin.user_id)
    return TrainingConfigSetOut(config=config)


@router.post(
    "/admin/retrain/trigger",
    summary="Start a retraining run",
    responses=errors(400, 401, 403, 413, 503),
    response_model=TriggerOut,
)
def trigger_retraining(body: TriggerIn, admin: AdminDep, container: ContainerDep) -> TriggerOut:
    """Answers at once: training runs in a worker process; follow it in /admin/retrain/status."""
    return trigger_out(container.training.trigger(admin.user_id, body.architecture, body.force))


@router.post(
    "/admin/retrain/cancel",
    summary="Stop the running retraining run",
    responses=errors(401, 403, 404),
    response_model=CancelOut,
)
def cancel_retraining(admin: AdminDep, container: ContainerDep) -> CancelOut:
    """Stop the running run after its current batch; 404 when none runs."""
    return CancelOut.of(container.training.cancel(admin.user_id))


@router.get(
    "/admin/retrain/status",
    summary="The retraining run's progress and the label threshold",
    responses=errors(401, 403),
    response_model=RetrainStatusOut,
)
def retrain_status(_: AdminDep, session: SessionDep, container: ContainerDep) -> RetrainStatusOut:
    """Phase, epoch, fraction, loss and ETA of the running run, and how many new labels start
    the next."""
    counts = label_pool.counts(session, container.settings.retrain_min_new_labels)
    return RetrainStatusOut(
        retrain_status=run_status_out(container.training.status()),
        threshold=ThresholdOut(
            should_retrain=counts.ready_for_retrain,
            current_labels=counts.unused_labels,
            required=counts.retrain_threshold,
        ),
        automatic_retraining=container.settings.retrain_auto,
        last_automatic_error=container.training.last_auto_error,
    )


@router.get(
    "/admin/retrain/architectures",
    summary="Architectures a run may train",
    responses=errors(401, 403),
    response_model=ArchitecturesOut,
)
def retrain_architectures(
    _: AdminDep, session: SessionDep, container: ContainerDep
) -> ArchitecturesOut:
    """The architectures a run may train, and the one it would use."""
    choice = architectures(default_architecture(session, container.settings))
    return ArchitecturesOut.model_validate(choice)


@router.get(
    "/admin/events",
    summary="The learning loop's events",
    responses=errors(401, 403),
    response_model=EventsOut,
)
def events(
    _: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    event_type: Annotated[str | None, Query(max_length=32)] = None,
    type: Annotated[str | None, Query(max_length=32)] = None,
    since: IsoDateTime | None = None,
) -> EventsOut:
    """Training, evaluation, promotion, rollback and configuration events, newest first."""
    found = list_events(
        session, limit=limit, kind=event_type or type, since=None if since is None else aware(since)
    )
    return EventsOut(events=[EventOut.model_validate(e) for e in found], total=len(found))


@router.get(
    "/admin/labels/count",
    summary="How many labels, used and unused",
    responses=errors(401, 403),
    response_model=LabelCountOut,
)
def label_count(_: AdminDep, session: SessionDep, container: ContainerDep) -> LabelCountOut:
    """Expert labels in all, used by a production model, and unused."""
    counts = label_pool.counts(session, container.settings.retrain_min_new_labels)
    return LabelCountOut.model_validate(counts)


@router.get(
    "/admin/labels",
    summary="The expert labels",
    responses=errors(401, 403),
    response_model=LabelsOut,
)
def labels(
    _: AdminDep,
    session: SessionDep,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    unused_only: bool = False,
) -> LabelsOut:
    """The expert labels with their cases, newest first."""
    entries, total = label_pool.pool_entries(
        session, container.sealer, limit=limit, unused_only=unused_only
    )
    return LabelsOut(labels=[PoolEntryOut.model_validate(e) for e in entries], total=total)


@router.get(
    "/model/retrain-status",
    summary="Retraining status (legacy route)",
    responses=errors(401),
    response_model=RunStatusOut,
)
def legacy_retrain_status(_: PrincipalDep, container: ContainerDep) -> RunStatusOut:
    """The running run's status, in the legacy shape."""
    return run_status_out(container.training.status())


@router.post(
    "/model/retrain",
    summary="Start a retraining run (legacy route)",
    responses=errors(400, 401, 403, 503),
    response_model=LegacyRetrainOut,
)
def legacy_retrain(
    principal: PrincipalDep,
    container: ContainerDep,
    architecture: Annotated[str | None, Query(max_length=40)] = None,
) -> LegacyRetrainOut:
    """The legacy route: the same run as /admin/retrain/trigger, in the legacy answer shapes."""
    if principal.role != Role.ADMIN:
        raise Forbidden("Only admins can trigger model retraining")
    return legacy_retrain_out(container.training.trigger(principal.user_id, architecture, False))
