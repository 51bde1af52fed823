"""The model registry: versions, their immutable files, and the production and active pointers.

Versions are ``vYYYYMMDD_NNN`` (NNN counts per day). A version's file is copied or written once
under ``STORAGE_ROOT/models/<version>/`` (temp file, fsync, rename, read-only) with its sha256
recorded; nothing ever moves or overwrites it, so every path in the registry stays valid (D10).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allcare.core.clock import wire_time
from allcare.core.config import Settings
from allcare.services.errors import NotFound
from allcare.store.models import Counter, ModelVersion, PointerChange

MODEL_NOT_FOUND = "Model not found"


class Status(StrEnum):
    TRAINING = "training"
    EVALUATING = "evaluating"
    PRODUCTION = "production"
    ARCHIVED = "archived"
    FAILED = "failed"
    REJECTED = "rejected"


class Source(StrEnum):
    TRAINING = "training"
    MODEL_PATH = "model_path"
    ASSET = "asset"
    COMMAND = "command"
    IMPORT = "import"


class Pointer(StrEnum):
    PRODUCTION = "production"
    ACTIVE = "active"


def new_version_id(session: Session, today: datetime | None = None) -> str:
    """Inside the caller's write transaction; unique under concurrency (a counter row per day)."""
    day = (today or datetime.now()).strftime("%Y%m%d")
    name = f"version:{day}"
    for _ in range(3):
        taken = session.execute(
            update(Counter)
            .where(Counter.name == name)
            .values(value=Counter.value + 1)
            .returning(Counter.value)
        ).scalar_one_or_none()
        if taken is not None:
            return f"v{day}_{taken:03d}"
        try:
            with session.begin_nested():
                session.add(Counter(name=name, value=1))
        except IntegrityError:
            continue
        return f"v{day}_001"
    raise RuntimeError("could not allocate a model version id")


def get_version(session: Session, version_id: str, *, lock: bool = False) -> ModelVersion:
    version = session.get(ModelVersion, version_id, with_for_update=lock)
    if version is None:
        raise NotFound(MODEL_NOT_FOUND)
    return version


def pointer(session: Session, name: Pointer) -> str | None:
    return session.scalar(
        select(PointerChange.version_id)
        .where(PointerChange.name == name)
        .order_by(PointerChange.id.desc())
        .limit(1)
    )


def set_pointer(
    session: Session, name: Pointer, version_id: str, actor_id: str | None, reason: str | None
) -> None:
    session.add(PointerChange(name=name, version_id=version_id, actor_id=actor_id, reason=reason))


def production_history(session: Session) -> list[str]:
    """Production versions, newest first, each once."""
    seen: list[str] = []
    for version_id in session.scalars(
        select(PointerChange.version_id)
        .where(PointerChange.name == Pointer.PRODUCTION)
        .order_by(PointerChange.id.desc())
    ):
        if version_id not in seen:
            seen.append(version_id)
    return seen


def find_by_sha(session: Session, sha256: str) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.sha256 == sha256, ModelVersion.file_key.is_not(None))
        .order_by(ModelVersion.created_at)
        .limit(1)
    )


def model_file(settings: Settings, version: ModelVersion) -> Path:
    if version.file_key is None:
        raise NotFound("Model file not found on disk")
    return settings.models_dir / version.file_key


def write_model_file(
    settings: Settings, version_id: str, name: str, write: Callable[[Path], object]
) -> tuple[str, str, int]:
    """``write`` fills a temp file; it becomes ``<version>/<name>``, read-only. Returns the file
    key, sha256 and size. A crash leaves only a hidden ``.partial`` file, removed at start-up."""
    folder = settings.models_dir / version_id
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=".", suffix=".partial")
    os.close(fd)
    temp = Path(temp_name)
    try:
        write(temp)
        digest = hashlib.sha256()
        with temp.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
            os.fsync(handle.fileno())
        temp.chmod(0o400)  # read-only, and owner-only like all patient-related data
        os.replace(temp, target)
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return f"{version_id}/{name}", digest.hexdigest(), target.stat().st_size


def copy_model_file(settings: Settings, version_id: str, source: Path) -> tuple[str, str, int]:
    name = "model.onnx" if source.suffix.lower() == ".onnx" else "model.pt"
    return write_model_file(settings, version_id, name, lambda temp: shutil.copyfile(source, temp))


def remove_partial_files(settings: Settings) -> int:
    removed = 0
    if settings.models_dir.exists():
        for leftover in settings.models_dir.rglob(".*.partial"):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def version_record(settings: Settings, version: ModelVersion) -> dict[str, Any]:
    """A registry entry as the admin screen reads it (contract 2.19), plus what the gate said."""
    metrics = dict(version.metrics or {})
    return {
        "version_id": version.id,
        "status": version.status,
        "created_at": wire_time(version.created_at),
        "base_model": version.base_version,
        "architecture": version.architecture,
        "training_config": version.training_config,
        "metrics": metrics,
        "path": str(settings.models_dir / version.file_key) if version.file_key else None,
        "sha256": version.sha256,
        "source": version.source,
        "source_name": version.source_name,
        "evaluation": version.evaluation,
        "error": version.error,
        "triggered_by": version.triggered_by,
        "started_at": wire_time(version.started_at),
        "finished_at": wire_time(version.finished_at),
    }


def list_models(session: Session, settings: Settings, status: str | None) -> dict[str, Any]:
    query = select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
    if status:
        query = query.where(ModelVersion.status == status)
    models = [version_record(settings, v) for v in session.scalars(query)]
    return {
        "status": "ok",
        "models": models,
        "current_production": pointer(session, Pointer.PRODUCTION),
        "active_inference": pointer(session, Pointer.ACTIVE),
        "total": len(models),
    }
