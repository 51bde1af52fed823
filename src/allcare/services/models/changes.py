"""What a deployment change (services/models/deployment.py) answers, and the registry entries
it writes: a model file brought in as a new version, the statuses and pointers of a new
production model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from allcare.core.config import Settings
from allcare.services.models.registry import Pointer, Source, Status, new_version_id, set_pointer
from allcare.store.model_files import ModelFiles
from allcare.store.models import ModelVersion


@dataclass(frozen=True)
class Activation:
    version_id: str
    path: str


@dataclass(frozen=True)
class Promotion:
    version_id: str
    previous_production: str | None
    reason: str


@dataclass(frozen=True)
class Rollback:
    from_version: str | None
    to_version: str
    reason: str


def register_file(
    session: Session,
    settings: Settings,
    path: Path,
    source: Source,
    status: Status,
    actor_id: str | None,
) -> ModelVersion:
    version_id = new_version_id(session)
    stored = ModelFiles.of(settings).copy(version_id, path)
    file_key, sha256, size = stored.key, stored.sha256, stored.size_bytes
    version = ModelVersion(
        id=version_id,
        status=status.value,
        source=source.value,
        source_name=path.name,
        base_version=None,
        file_key=file_key,
        sha256=sha256,
        size_bytes=size,
        metrics={},
        triggered_by=actor_id,
    )
    session.add(version)
    session.flush()
    return version


def make_production(
    session: Session,
    version: ModelVersion,
    previous: str | None,
    actor_id: str | None,
    reason: str,
) -> None:
    if previous is not None:
        old = session.get(ModelVersion, previous, with_for_update=True)
        if old is not None and old.status == Status.PRODUCTION:
            old.status = Status.ARCHIVED.value
    version.status = Status.PRODUCTION.value
    set_pointer(session, Pointer.PRODUCTION, version.id, actor_id, reason)
    set_pointer(session, Pointer.ACTIVE, version.id, actor_id, reason)
