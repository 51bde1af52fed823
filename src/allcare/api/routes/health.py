from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from allcare.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(runtime: RuntimeDep) -> JSONResponse:
    """No auth. 503 when the database is unreachable, so a load balancer stops sending traffic."""
    database_ok = runtime.db.ping()
    model = runtime.engine.model
    body: dict[str, Any] = {
        "status": "ok" if database_ok else "degraded",
        "database": {
            "ok": database_ok,
            "backend": "sqlite" if runtime.db.is_sqlite else "postgresql",
        },
        "model": {"loaded": model is not None, "version": model.version if model else None},
    }
    return JSONResponse(body, status_code=200 if database_ok else 503)
