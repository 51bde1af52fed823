from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from allcare.api.deps import RuntimeDep

router = APIRouter(tags=["health"])
# The health answers keep their own body when down: a load balancer reads status, not detail.
NOT_UP: dict[int | str, dict[str, Any]] = {503: {"description": "Down: the body says what"}}


@router.get(
    "/health", summary="Health: database and model state (no credentials)", responses=NOT_UP
)
def health(runtime: RuntimeDep) -> JSONResponse:
    """No auth. 503 when the database is unreachable, so a load balancer stops sending traffic."""
    database_ok = runtime.db.ping()
    body = {"status": "ok" if database_ok else "degraded", **_state(runtime, database_ok)}
    return JSONResponse(body, status_code=200 if database_ok else 503)


@router.get("/health/live", summary="Liveness: the process answers")
def live() -> dict[str, str]:
    """The process answers; touches nothing else, so a slow database never gets it restarted."""
    return {"status": "ok"}


@router.get("/health/ready", summary="Readiness: database up and a model serving", responses=NOT_UP)
def ready(runtime: RuntimeDep) -> JSONResponse:
    """Ready for the app's whole journey: the database answers and a model serves /check-image."""
    database_ok = runtime.db.ping()
    is_ready = database_ok and runtime.engine.model is not None
    body = {"status": "ready" if is_ready else "not_ready", **_state(runtime, database_ok)}
    return JSONResponse(body, status_code=200 if is_ready else 503)


def _state(runtime: RuntimeDep, database_ok: bool) -> dict[str, Any]:
    model = runtime.engine.model
    return {
        "database": {
            "ok": database_ok,
            "backend": "sqlite" if runtime.db.is_sqlite else "postgresql",
        },
        "model": {"loaded": model is not None, "version": model.version if model else None},
    }
