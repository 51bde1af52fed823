"""What every newly trained model goes through, whether ``allcare train`` made it or the
background run: trained on the retraining device, saved as its version's file, proven to load
the way serving loads it before anything judges it, and its outcome recorded in one
transaction with its event. Only the evaluation differs (a folder's held-out split, or the
clinic's evaluation set and the gate)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from allcare.core.clock import now_utc
from allcare.core.config import Settings
from allcare.ml.loading import LoadedModel, load_model
from allcare.ml.model_file import save_checkpoint
from allcare.ml.torch_runtime import resolve_torch_device
from allcare.services.events import EventType, record_event
from allcare.services.models.options import model_options
from allcare.services.models.registry import Status, get_version
from allcare.store.db import Database, begin_write
from allcare.store.model_files import ModelFiles, StoredModelFile
from allcare.store.objects import ObjectStoreError

if TYPE_CHECKING:
    from allcare.ml.model_file import Module
    from allcare.store.models import ModelVersion

log = logging.getLogger(__name__)


def training_device(settings: Settings) -> str:
    return resolve_torch_device(settings.retrain_device, "RETRAIN_DEVICE")


@dataclass(frozen=True)
class SavedCandidate:
    file: StoredModelFile
    model: LoadedModel

    def record_on(self, version: ModelVersion) -> None:
        version.file_key = self.file.key
        version.sha256 = self.file.sha256
        version.size_bytes = self.file.size_bytes


def save_candidate(
    settings: Settings, version_id: str, module: Module, architecture: str
) -> SavedCandidate:
    """The checkpoint as ``<version>/model.pt`` (durable, read-only), then loaded back with
    the server's model options: a file that does not load never gets judged."""
    files = ModelFiles.of(settings)
    stored = files.write(
        version_id, "model.pt", lambda temp: save_checkpoint(module, architecture, version_id, temp)
    )
    loaded = load_model(settings.models_dir / stored.key, model_options(settings), version_id)
    try:  # exported once here (a worker has PyTorch), for replicas that have not
        files.publish_exports(stored.key)
    except ObjectStoreError as exc:
        log.warning("The ONNX export of %s was not published: %s", version_id, exc)
    return SavedCandidate(stored, loaded)


@dataclass(frozen=True)
class Event:
    type: EventType
    message: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """A judged candidate: ``rejected`` by the gate, or waiting (evaluating) for a promotion."""

    metrics: dict[str, Any]
    training_log: list[dict[str, Any]]
    evaluation: dict[str, Any]
    rejected: bool
    completed: Event
    also: tuple[Event, ...] = ()


def record_candidate(
    db: Database, version_id: str, saved: SavedCandidate, outcome: Outcome
) -> None:
    """The candidate's file, figures and verdict, with its events, in one transaction."""
    with db.session() as session:
        begin_write(session)
        version = get_version(session, version_id, lock=True)
        saved.record_on(version)
        version.metrics = outcome.metrics
        version.training_log = outcome.training_log
        version.evaluation = outcome.evaluation
        version.status = (Status.REJECTED if outcome.rejected else Status.EVALUATING).value
        version.finished_at = now_utc()
        version.heartbeat_at = now_utc()
        version.progress = (version.progress or {}) | {"phase": "done", "fraction": 1.0}
        for event in (outcome.completed, *outcome.also):
            record_event(session, event.type, event.message, version_id=version_id, **event.fields)
        session.commit()
