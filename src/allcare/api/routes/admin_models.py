"""/admin/models*: the registry, what serves, and the changes an admin makes (2.19-2.27)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from allcare.api.deps import AdminDep, ContainerDep, SessionDep
from allcare.api.schemas.admin import AssetActivateIn, PromoteIn, RollbackIn
from allcare.api.schemas.admin_models import (
    ActivationOut,
    ActiveOut,
    AssetActivationOut,
    AssetListOut,
    EvaluationSetOut,
    ModelListOut,
    NoProductionOut,
    ProductionOut,
    PromotionOut,
    RollbackOut,
    ServingVersionOut,
    TrainingLogOut,
    VersionOut,
)
from allcare.api.schemas.common import errors
from allcare.services.errors import NotFound
from allcare.services.learning import evaluation_set
from allcare.services.models import assets, records, registry

router = APIRouter(prefix="/admin/models", tags=["admin: models"])


def _version_id(text: str) -> str:
    if not registry.is_version_id(text):
        raise NotFound(f"Model {text[:40]} not found")
    return text


@router.get(
    "", summary="The model registry", responses=errors(401, 403), response_model=ModelListOut
)
def list_models(
    _: AdminDep,
    session: SessionDep,
    container: ContainerDep,
    status: Annotated[registry.StatusLiteral | None, Query()] = None,
) -> ModelListOut:
    """Every model version, newest first, with its metrics, evaluation and gate verdict."""
    wanted = None if status is None else registry.Status(status)
    return ModelListOut.of(records.list_models(session, container.settings, wanted))


@router.get(
    "/production",
    summary="The production model",
    responses=errors(401, 403),
    response_model=ProductionOut | NoProductionOut,
)
def production_model(
    _: AdminDep, session: SessionDep, container: ContainerDep
) -> ProductionOut | NoProductionOut:
    """The production model's record, or null when none is deployed."""
    version_id = registry.pointer(session, registry.Pointer.PRODUCTION)
    if version_id is None:
        return NoProductionOut()
    version = registry.get_version(session, version_id)
    return ProductionOut(
        production_model=VersionOut.of(records.version_record(container.settings, version))
    )


@router.get(
    "/active", summary="The model that serves", responses=errors(401, 403), response_model=ActiveOut
)
def active_model(_: AdminDep, session: SessionDep, container: ContainerDep) -> ActiveOut:
    """The model the registry says to serve, and the version this process serves now."""
    version_id = registry.pointer(session, registry.Pointer.ACTIVE)
    if version_id is None:
        return ActiveOut(active_inference=None)
    version = registry.get_version(session, version_id)
    record = records.version_record(container.settings, version)
    serving = container.engine.model
    return ActiveOut(
        active_inference=ServingVersionOut(
            **VersionOut.of(record).model_dump(),
            active_path=record.path,
            serving=serving.version if serving else None,
        )
    )


@router.get(
    "/assets",
    summary="Model files in MODEL_ASSETS_DIR",
    responses=errors(401, 403),
    response_model=AssetListOut,
)
def list_assets(_: AdminDep, session: SessionDep, container: ContainerDep) -> AssetListOut:
    """Model files an admin may serve directly (MODEL_ASSETS_DIR), and which one is active."""
    return AssetListOut.of(assets.list_assets(session, container.settings))


@router.post(
    "/assets/activate",
    summary="Serve a model file from MODEL_ASSETS_DIR",
    responses=errors(400, 401, 403, 404, 413),
    response_model=AssetActivationOut,
)
def activate_asset(
    body: AssetActivateIn, admin: AdminDep, container: ContainerDep
) -> AssetActivationOut:
    """Loads the file first and reports the truth (D12); the choice survives restarts."""
    done = assets.activate_asset(container.deployment, container.settings, admin, body.file_name)
    return AssetActivationOut.of(done)


@router.get(
    "/{version_id}/training-log",
    summary="A run's training log, per epoch",
    responses=errors(401, 403, 404),
    response_model=TrainingLogOut,
)
def training_log(version_id: str, _: AdminDep, session: SessionDep) -> TrainingLogOut:
    """One row per epoch (loss, accuracy, timings) and the series for a plot."""
    version = registry.get_version(session, _version_id(version_id))
    rows = version.training_log
    if not rows:
        raise NotFound("Training log not found")
    return TrainingLogOut.of(version.id, rows)


@router.get(
    "/{version_id}/evaluation-set",
    summary="The exact evaluation set a run was judged on",
    responses=errors(401, 403, 404),
    response_model=EvaluationSetOut,
)
def recorded_evaluation_set(version_id: str, _: AdminDep, session: SessionDep) -> EvaluationSetOut:
    """The exact cases and photos a run was judged on, fixed when it was triggered."""
    version = registry.get_version(session, _version_id(version_id))
    if not version.eval_set:
        raise NotFound(f"No evaluation set was recorded for {version.id}")
    return EvaluationSetOut(
        version_id=version.id,
        summary=evaluation_set.summary(version.eval_set).record(),
        evaluation_set=version.eval_set,
    )


@router.post(
    "/{version_id}/activate",
    summary="Serve a model without making it production",
    responses=errors(400, 401, 403, 404),
    response_model=ActivationOut,
)
def activate_model(version_id: str, admin: AdminDep, container: ContainerDep) -> ActivationOut:
    """Serve this model (production or candidate) without changing production."""
    return ActivationOut.of(container.deployment.activate(_version_id(version_id), admin.user_id))


@router.post(
    "/{version_id}/promote",
    summary="Make a model production",
    responses=errors(400, 401, 403, 404, 409, 413),
    response_model=PromotionOut,
)
def promote_model(
    version_id: str, body: PromoteIn, admin: AdminDep, container: ContainerDep
) -> PromotionOut:
    """Production from now on, serving included; the previous production is archived."""
    done = container.deployment.promote(_version_id(version_id), admin.user_id, body.reason)
    return PromotionOut.of(done)


@router.post(
    "/{version_id}/rollback",
    summary="Roll production back to a given model",
    responses=errors(400, 401, 403, 404, 409, 413),
    response_model=RollbackOut,
)
def rollback_to_model(
    version_id: str, admin: AdminDep, container: ContainerDep, body: RollbackIn | None = None
) -> RollbackOut:
    """Production goes back to the given earlier production model; audited with the reason."""
    reason = (body or RollbackIn()).reason
    return RollbackOut.of(
        container.deployment.rollback(_version_id(version_id), admin.user_id, reason)
    )


@router.post(
    "/rollback",
    summary="Roll production back to the one before",
    responses=errors(400, 401, 403, 413),
    response_model=RollbackOut,
)
def rollback_to_previous(
    admin: AdminDep, container: ContainerDep, body: RollbackIn | None = None
) -> RollbackOut:
    """One call back to the production model before the current one."""
    reason = (body or RollbackIn()).reason
    return RollbackOut.of(container.deployment.rollback(None, admin.user_id, reason))
