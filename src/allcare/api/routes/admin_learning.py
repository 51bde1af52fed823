"""/admin training configuration, retraining, events and labels (2.17-2.18, 2.28-2.33), and the
legacy /model routes (2.15-2.16)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from allcare.api.deps import AdminDep, PrincipalDep, RuntimeDep, SessionDep
from allcare.api.schemas.admin import TrainingConfigIn, TriggerIn
from allcare.api.schemas.common import IsoDateTime, errors
from allcare.core.clock import aware
from allcare.runtime import Runtime
from allcare.services import label_pool, registry, training_config
from allcare.services.architecture_choice import architectures, canonical_architecture
from allcare.services.errors import Forbidden
from allcare.services.events import list_events
from allcare.services.principal import Role
from allcare.store.models import ModelVersion

router = APIRouter(tags=["admin: learning"])


@router.get(
    "/admin/training-config",
    summary="The training configuration and its defaults",
    responses=errors(401, 403),
)
def get_training_config(_: AdminDep, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """What the next run will use, and the server's defaults (RETRAIN_* settings)."""
    return {
        "status": "ok",
        "config": training_config.current(session, runtime.settings),
        "defaults": training_config.defaults(runtime.settings),
    }


@router.post(
    "/admin/training-config",
    summary="Change the training configuration",
    responses=errors(400, 401, 403, 413),
)
def set_training_config(
    body: TrainingConfigIn, admin: AdminDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Merge the given values into the stored configuration; audited."""
    changes = body.model_dump(exclude_none=True)
    config = training_config.update(session, runtime.settings, changes, admin.user_id)
    return {"status": "ok", "message": "Training configuration updated", "config": config}


@router.post(
    "/admin/retrain/trigger",
    summary="Start a retraining run",
    responses=errors(400, 401, 403, 413, 503),
)
def trigger_retraining(body: TriggerIn, admin: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Answers at once: training runs in a worker process; follow it in /admin/retrain/status."""
    return runtime.training.trigger(admin.user_id, body.architecture, body.force)


@router.post(
    "/admin/retrain/cancel",
    summary="Stop the running retraining run",
    responses=errors(401, 403, 404),
)
def cancel_retraining(admin: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Stop the running run after its current batch; 404 when none runs."""
    return runtime.training.cancel(admin.user_id)


@router.get(
    "/admin/retrain/status",
    summary="The retraining run's progress and the label threshold",
    responses=errors(401, 403),
)
def retrain_status(_: AdminDep, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Phase, epoch, fraction, loss and ETA of the running run, and how many new labels start
    the next."""
    counts = label_pool.counts(session, runtime.settings.retrain_min_new_labels)
    return {
        "status": "ok",
        "retrain_status": runtime.training.status(),
        "threshold": {
            "should_retrain": counts["ready_for_retrain"],
            "current_labels": counts["unused_labels"],
            "required": counts["retrain_threshold"],
        },
        "automatic_retraining": runtime.settings.retrain_auto,
        "last_automatic_error": runtime.training.last_auto_error,
    }


@router.get(
    "/admin/retrain/architectures",
    summary="Architectures a run may train",
    responses=errors(401, 403),
)
def retrain_architectures(_: AdminDep, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The architectures a run may train, and the one it would use."""
    return architectures(_default_architecture(session, runtime))


def _default_architecture(session: Session, runtime: Runtime) -> str:
    """What fine-tuning would use: production's architecture, else the configured one."""
    production = registry.pointer(session, registry.Pointer.PRODUCTION)
    version = session.get(ModelVersion, production) if production else None
    if version is not None and version.architecture:
        return version.architecture
    config = training_config.current(session, runtime.settings)
    configured = str(config.get("architecture") or runtime.settings.al_default_architecture)
    return canonical_architecture(configured)


@router.get("/admin/events", summary="The learning loop's events", responses=errors(401, 403))
def events(
    _: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    event_type: Annotated[str | None, Query(max_length=32)] = None,
    type: Annotated[str | None, Query(max_length=32)] = None,
    since: IsoDateTime | None = None,
) -> dict[str, Any]:
    """Training, evaluation, promotion, rollback and configuration events, newest first."""
    found = list_events(
        session, limit=limit, kind=event_type or type, since=None if since is None else aware(since)
    )
    return {"status": "ok", "events": found, "total": len(found)}


@router.get(
    "/admin/labels/count", summary="How many labels, used and unused", responses=errors(401, 403)
)
def label_count(_: AdminDep, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Expert labels in all, used by a production model, and unused."""
    return {"status": "ok"} | label_pool.counts(session, runtime.settings.retrain_min_new_labels)


@router.get("/admin/labels", summary="The expert labels", responses=errors(401, 403))
def labels(
    _: AdminDep,
    session: SessionDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    unused_only: bool = False,
) -> dict[str, Any]:
    """The expert labels with their cases, newest first."""
    entries, total = label_pool.pool_entries(
        session, runtime.sealer, limit=limit, unused_only=unused_only
    )
    return {"status": "ok", "labels": entries, "total": total}


@router.get(
    "/model/retrain-status", summary="Retraining status (legacy route)", responses=errors(401)
)
def legacy_retrain_status(_: PrincipalDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The running run's status, in the legacy shape."""
    return runtime.training.status()


@router.post(
    "/model/retrain",
    summary="Start a retraining run (legacy route)",
    responses=errors(400, 401, 403, 503),
)
def legacy_retrain(
    principal: PrincipalDep,
    runtime: RuntimeDep,
    architecture: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """The legacy route: the same run as /admin/retrain/trigger, in the legacy answer shapes."""
    if principal.role != Role.ADMIN:
        raise Forbidden("Only admins can trigger model retraining")
    result = runtime.training.trigger(principal.user_id, architecture, force=False)
    if result["status"] == "skipped" and result.get("reason") == "Below threshold":
        return {
            "status": "skipped",
            "reason": "insufficient_rejected_labels",
            "required": result["threshold"],
            "current": result["current_labels"],
        }
    if not result.get("success"):
        return result
    return {
        "status": "retraining_started",
        "message": "Model retraining has been started in the background",
        "current": result["new_samples"],
        "architecture": result["architecture"],
        "version_id": result["version_id"],
    }
