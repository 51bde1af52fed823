"""What every newly trained model goes through, whether ``allcare train`` made it or the
background run: trained on the retraining device, saved as its version's file, and proven to
load the way serving loads it before anything judges or records it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from allcare.core.config import Settings
from allcare.ml.loading import LoadedModel, load_model
from allcare.ml.model_file import save_checkpoint
from allcare.ml.torch_runtime import resolve_torch_device
from allcare.services.models.options import model_options
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
