from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from allcare.api.deps import ContainerDep
from allcare.api.schemas.health import (
    DatabaseStateOut,
    HealthOut,
    JobsStateOut,
    LiveOut,
    ModelStateOut,
    ObjectsStateOut,
    ReadyOut,
)

router = APIRouter(tags=["health"])
# The health answers keep their own body when down: a load balancer reads status, not detail.


def _up_or_down(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"model": model, "description": "Up"},
        503: {"model": model, "description": "Down: the body says what"},
    }


@router.get(
    "/health",
    summary="Health: database and model state (no credentials)",
    response_class=JSONResponse,
    responses=_up_or_down(HealthOut),
)
def health(container: ContainerDep) -> JSONResponse:
    """No auth. 503 when the database is unreachable, so a load balancer stops sending traffic."""
    database_ok = container.db.ping()
    database, model = _state(container, database_ok)
    body = HealthOut(status="ok" if database_ok else "degraded", database=database, model=model)
    return JSONResponse(body.model_dump(), status_code=200 if database_ok else 503)


@router.get("/health/live", summary="Liveness: the process answers", response_model=LiveOut)
def live() -> LiveOut:
    """The process answers; touches nothing else, so a slow database never gets it restarted."""
    return LiveOut()


@router.get(
    "/health/ready",
    summary="Readiness: database, object storage and job system up, a model serving",
    response_class=JSONResponse,
    responses=_up_or_down(ReadyOut),
)
def ready(container: ContainerDep) -> JSONResponse:
    """Ready for the app's whole journey: the database and the photo store answer and a model
    serves /check-image."""
    database_ok = container.db.ping()
    objects = ObjectsStateOut(
        ok=container.objects_ok(), backend="s3" if container.blobs.objects.remote else "local"
    )
    jobs = _jobs(container)
    is_ready = database_ok and objects.ok and jobs.ok and container.engine.model is not None
    database, model = _state(container, database_ok)
    body = ReadyOut(
        status="ready" if is_ready else "not_ready",
        database=database,
        model=model,
        objects=objects,
        jobs=jobs,
    )
    return JSONResponse(body.model_dump(), status_code=200 if is_ready else 503)


def _jobs(container: ContainerDep) -> JobsStateOut:
    """A replica with no live worker is still ready (it serves); the counts tell monitoring."""
    if container.training.queue is None:
        return JobsStateOut(ok=True, backend="local")
    state = container.job_queue_state()
    if state is None:
        return JobsStateOut(ok=False, backend="procrastinate")
    return JobsStateOut(
        ok=True,
        backend="procrastinate",
        queued=state.queued,
        running=state.running,
        workers=state.workers,
        heartbeat_age_s=state.heartbeat_age_s,
    )


def _state(container: ContainerDep, database_ok: bool) -> tuple[DatabaseStateOut, ModelStateOut]:
    model = container.engine.model
    return (
        DatabaseStateOut(
            ok=database_ok, backend="sqlite" if container.db.is_sqlite else "postgresql"
        ),
        ModelStateOut(loaded=model is not None, version=model.version if model else None),
    )
