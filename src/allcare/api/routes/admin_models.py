"""/admin/models*: the registry, what serves, and the changes an admin makes (2.19-2.27)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query

from allcare.api.deps import AdminDep, RuntimeDep, SessionDep
from allcare.api.schemas.admin import AssetActivateIn, ModelStatus, PromoteIn, RollbackIn
from allcare.api.schemas.common import errors
from allcare.services import assets, evaluation_set, registry
from allcare.services.errors import NotFound

router = APIRouter(prefix="/admin/models", tags=["admin: models"])
VERSION_ID = re.compile(r"^v\d{8}_\d{3,}$")


def _version_id(text: str) -> str:
    if not VERSION_ID.fullmatch(text):
        raise NotFound(f"Model {text[:40]} not found")
    return text


@router.get("", summary="The model registry", responses=errors(401, 403))
def list_models(
    _: AdminDep,
    session: SessionDep,
    runtime: RuntimeDep,
    status: Annotated[ModelStatus | None, Query()] = None,
) -> dict[str, Any]:
    """Every model version, newest first, with its metrics, evaluation and gate verdict."""
    return registry.list_models(session, runtime.settings, status)


@router.get("/production", summary="The production model", responses=errors(401, 403))
def production_model(_: AdminDep, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The production model's record, or null when none is deployed."""
    version_id = registry.pointer(session, registry.Pointer.PRODUCTION)
    if version_id is None:
        return {"status": "ok", "production_model": None, "message": "No production model deployed"}
    version = registry.get_version(session, version_id)
    return {"status": "ok", "production_model": registry.version_record(runtime.settings, version)}


@router.get("/active", summary="The model that serves", responses=errors(401, 403))
def active_model(_: AdminDep, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The model the registry says to serve, and the version this process serves now."""
    version_id = registry.pointer(session, registry.Pointer.ACTIVE)
    if version_id is None:
        return {"status": "ok", "active_inference": None}
    record = registry.version_record(runtime.settings, registry.get_version(session, version_id))
    serving = runtime.engine.model
    record["active_path"] = record["path"]
    record["serving"] = serving.version if serving else None
    return {"status": "ok", "active_inference": record}


@router.get("/assets", summary="Model files in MODEL_ASSETS_DIR", responses=errors(401, 403))
def list_assets(_: AdminDep, session: SessionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Model files an admin may serve directly (MODEL_ASSETS_DIR), and which one is active."""
    return assets.list_assets(session, runtime.settings)


@router.post(
    "/assets/activate",
    summary="Serve a model file from MODEL_ASSETS_DIR",
    responses=errors(400, 401, 403, 404, 413),
)
def activate_asset(body: AssetActivateIn, admin: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Loads the file first and reports the truth (D12); the choice survives restarts."""
    return assets.activate_asset(runtime.deployment, runtime.settings, admin, body.file_name)


@router.get(
    "/{version_id}/training-log",
    summary="A run's training log, per epoch",
    responses=errors(401, 403, 404),
)
def training_log(version_id: str, _: AdminDep, session: SessionDep) -> dict[str, Any]:
    """One row per epoch (loss, accuracy, timings) and the series for a plot."""
    version = registry.get_version(session, _version_id(version_id))
    rows = version.training_log
    if not rows:
        raise NotFound("Training log not found")
    metrics = sorted({key for row in rows for key in row if key != "epoch"})
    return {
        "status": "ok",
        "version_id": version.id,
        "training_log_file": "training_log.json",
        "total_epochs": len(rows),
        "raw_log": rows,
        "plot_data": {
            "epochs": [row.get("epoch") for row in rows],
            "series": {key: [row.get(key) for row in rows] for key in metrics},
            "available_metrics": metrics,
        },
    }


@router.get(
    "/{version_id}/evaluation-set",
    summary="The exact evaluation set a run was judged on",
    responses=errors(401, 403, 404),
)
def recorded_evaluation_set(version_id: str, _: AdminDep, session: SessionDep) -> dict[str, Any]:
    """The exact cases and photos a run was judged on, fixed when it was triggered."""
    version = registry.get_version(session, _version_id(version_id))
    if not version.eval_set:
        raise NotFound(f"No evaluation set was recorded for {version.id}")
    return {
        "status": "ok",
        "version_id": version.id,
        "summary": evaluation_set.summary(version.eval_set),
        "evaluation_set": version.eval_set,
    }


@router.post(
    "/{version_id}/activate",
    summary="Serve a model without making it production",
    responses=errors(400, 401, 403, 404),
)
def activate_model(version_id: str, admin: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Serve this model (production or candidate) without changing production."""
    return runtime.deployment.activate(_version_id(version_id), admin.user_id)


@router.post(
    "/{version_id}/promote",
    summary="Make a model production",
    responses=errors(400, 401, 403, 404, 409, 413),
)
def promote_model(
    version_id: str, body: PromoteIn, admin: AdminDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Production from now on, serving included; the previous production is archived."""
    return runtime.deployment.promote(_version_id(version_id), admin.user_id, body.reason)


@router.post(
    "/{version_id}/rollback",
    summary="Roll production back to a given model",
    responses=errors(400, 401, 403, 404, 409, 413),
)
def rollback_to_model(
    version_id: str, admin: AdminDep, runtime: RuntimeDep, body: RollbackIn | None = None
) -> dict[str, Any]:
    """Production goes back to the given earlier production model; audited with the reason."""
    reason = (body or RollbackIn()).reason
    return runtime.deployment.rollback(_version_id(version_id), admin.user_id, reason)


@router.post(
    "/rollback",
    summary="Roll production back to the one before",
    responses=errors(400, 401, 403, 413),
)
def rollback_to_previous(
    admin: AdminDep, runtime: RuntimeDep, body: RollbackIn | None = None
) -> dict[str, Any]:
    """One call back to the production model before the current one."""
    return runtime.deployment.rollback(None, admin.user_id, (body or RollbackIn()).reason)
