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


class JobsStateOut(BaseModel):
    """Where training runs execute: this server (``local``) or the job system's workers."""

    ok: bool
    backend: Literal["local", "procrastinate"]
    queued: int | None = None
    running: int | None = None
    workers: int | None = None
    heartbeat_age_s: float | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: DatabaseStateOut
    model: ModelStateOut


class ReadyOut(BaseModel):
    status: Literal["ready", "not_ready"]
    database: DatabaseStateOut
    model: ModelStateOut
    objects: ObjectsStateOut
    jobs: JobsStateOut


class LiveOut(BaseModel):
    status: Literal["ok"] = "ok"
