"""The model registry: versions, their immutable files, and the production and active pointers.

Versions are ``vYYYYMMDD_NNN`` (NNN counts per day). A version's file is written once by
store/model_files.py with its sha256 recorded; nothing ever moves or overwrites it, so every path
in the registry stays valid (D10).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from allcare.core.config import Settings
from allcare.services.errors import NotFound, Unavailable
from allcare.store.model_files import ModelFiles
from allcare.store.models import Counter, ModelVersion, PointerChange
from allcare.store.objects import ObjectStoreError

MODEL_NOT_FOUND = "Model not found"
# ``v`` + the day + a per-day counter of at least three digits: v20261203_001.
VERSION_ID = re.compile(r"^v\d{8}_\d{3,}$")


class Status(StrEnum):
    TRAINING = "training"
    EVALUATING = "evaluating"
    PRODUCTION = "production"
    ARCHIVED = "archived"
    FAILED = "failed"
    REJECTED = "rejected"


if TYPE_CHECKING:
    StatusLiteral = str
else:  # the same names as a Literal, so request validation answers as it always did
    StatusLiteral = Literal[tuple(status.value for status in Status)]


class Source(StrEnum):
    TRAINING = "training"
    MODEL_PATH = "model_path"
    ASSET = "asset"
    COMMAND = "command"
    IMPORT = "import"


class Pointer(StrEnum):
    PRODUCTION = "production"
    ACTIVE = "active"


def is_version_id(text: str) -> bool:
    return VERSION_ID.fullmatch(text) is not None


def _version_id(day: str, number: int) -> str:
    return f"v{day}_{number:03d}"


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
            return _version_id(day, taken)
        try:
            with session.begin_nested():
                session.add(Counter(name=name, value=1))
        except IntegrityError:
            continue
        return _version_id(day, 1)
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
    """The version's file on this machine, fetched from the object store where it lacks it."""
    if version.file_key is None:
        raise NotFound("Model file not found on disk")
    try:
        return ModelFiles.of(settings).local_path(version.file_key, version.sha256)
    except ObjectStoreError as exc:
        raise Unavailable(f"Model {version.id}'s file cannot be fetched: {exc}") from exc


def training_runs_by_status(session: Session) -> dict[str, int]:
    query = (
        select(ModelVersion.status, func.count())
        .where(ModelVersion.source == Source.TRAINING.value)
        .group_by(ModelVersion.status)
    )
    return dict(session.execute(query).all())
