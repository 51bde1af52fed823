"""The health answers: the same body up (200) and down (503), which a load balancer reads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class DatabaseStateOut(BaseModel):
    ok: bool
    backend: Literal["sqlite", "postgresql"]


class ModelStateOut(BaseModel):
    loaded: bool
    version: str | None


class ObjectsStateOut(BaseModel):
    """Where photos and model files live: the local folder or an S3-compatible bucket."""

    ok: bool
    backend: Literal["local", "s3"]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: DatabaseStateOut
    model: ModelStateOut


class ReadyOut(BaseModel):
    status: Literal["ready", "not_ready"]
    database: DatabaseStateOut
    model: ModelStateOut
    objects: ObjectsStateOut


class LiveOut(BaseModel):
    status: Literal["ok"] = "ok"
