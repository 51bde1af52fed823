"""MODEL_PATH at start-up: a file whose sha256 the registry does not know is a deployment. It
is loaded first, then registered once (processes starting together take a lock and look again)
and made production."""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy.orm import Session

from allcare.core.config import ConfigError, Settings
from allcare.ml.batching import InferenceEngine
from allcare.ml.model_source import ModelLoadError, sha256_file
from allcare.services.events import EventType, record_event
from allcare.services.models.changes import make_production, register_file
from allcare.services.models.registry import Pointer, Source, Status, find_by_sha, pointer
from allcare.store.db import begin_write, hold_lock
from allcare.store.model_files import ModelFiles
from allcare.store.models import ModelVersion

log = logging.getLogger(__name__)
MODEL_PATH_LOCK = "lock:model-path"


def register_model_path(
    session: Session, settings: Settings, engine: InferenceEngine
) -> ModelVersion | None:
    """The new version, already serving; None when the registry knows the file."""
    path = settings.model_path
    assert path is not None
    if not path.is_file():
        raise ConfigError(f"MODEL_PATH: model file {path} does not exist")
    sha = sha256_file(path)
    if find_by_sha(session, sha) is not None:
        return None
    try:
        loaded = engine.replace(path, "MODEL_PATH")
    except ModelLoadError as exc:
        raise ConfigError(f"MODEL_PATH: {exc}") from exc
    begin_write(session)
    hold_lock(session, MODEL_PATH_LOCK)  # processes starting together register it once
    if find_by_sha(session, sha) is not None:
        session.rollback()
        return None
    version = register_file(session, settings, path, Source.MODEL_PATH, Status.EVALUATING, None)
    version.architecture = loaded.source.architecture
    previous = pointer(session, Pointer.PRODUCTION)
    make_production(session, version, previous, None, "MODEL_PATH at start-up")
    record_event(
        session,
        EventType.MODEL_REGISTERED,
        f"MODEL_PATH {path.name} registered as {version.id} and put in production",
        version_id=version.id,
        previous_production=previous,
        source=Source.MODEL_PATH.value,
        sha256=version.sha256,
    )
    session.commit()
    # The registry's copy has the same bytes: serve the loaded model under its version id.
    engine.swap(dataclasses.replace(loaded, version=version.id))
    log.info("MODEL_PATH %s registered as %s (production)", path, version.id)
    if version.file_key is not None:
        ModelFiles.of(settings).adopt_exports(path, version.file_key)
    return version
