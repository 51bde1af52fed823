"""A registry version as the admin screen and ``allcare models list`` read it (contract 2.19),
plus what the gate said."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allcare.core.clock import wire_time
from allcare.core.config import Settings
from allcare.services.models.registry import Pointer, Status, pointer
from allcare.store.models import ModelVersion


@dataclass(frozen=True)
class VersionRecord:
    version_id: str
    status: str
    created_at: str | None
    base_model: str | None
    architecture: str | None
    training_config: dict[str, Any] | None
    metrics: dict[str, Any]
    path: str | None
    sha256: str | None
    source: str | None
    source_name: str | None
    evaluation: dict[str, Any] | None
    error: str | None
    triggered_by: str | None
    started_at: str | None
    finished_at: str | None


@dataclass(frozen=True)
class ModelListing:
    models: list[VersionRecord]
    current_production: str | None
    active_inference: str | None


def version_record(settings: Settings, version: ModelVersion) -> VersionRecord:
    return VersionRecord(
        version_id=version.id,
        status=version.status,
        created_at=wire_time(version.created_at),
        base_model=version.base_version,
        architecture=version.architecture,
        training_config=version.training_config,
        metrics=dict(version.metrics or {}),
        path=str(settings.models_dir / version.file_key) if version.file_key else None,
        sha256=version.sha256,
        source=version.source,
        source_name=version.source_name,
        evaluation=version.evaluation,
        error=version.error,
        triggered_by=version.triggered_by,
        started_at=wire_time(version.started_at),
        finished_at=wire_time(version.finished_at),
    )


def list_models(session: Session, settings: Settings, status: Status | None) -> ModelListing:
    query = select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
    if status:
        query = query.where(ModelVersion.status == status)
    return ModelListing(
        models=[version_record(settings, v) for v in session.scalars(query)],
        current_production=pointer(session, Pointer.PRODUCTION),
        active_inference=pointer(session, Pointer.ACTIVE),
    )
