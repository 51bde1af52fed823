"""Inference in micro-batches on the model that serves, which can be swapped under load.

Requests wait in core/batch_worker.py's bounded queue and reach the model in batches (a lone
request never waits). Each batch runs on the model that is current when the batch starts; a
swap replaces that reference, so batches in flight finish on the old model and no request
fails because of a swap.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from allcare.core.batch_worker import BatchWorker
from allcare.ml.embeddings import compress
from allcare.ml.loading import LoadedModel, ModelOptions, load_model
from allcare.ml.runners import softmax

log = logging.getLogger(__name__)


class NoModel(Exception):
    pass


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray
    model_version: str
    embedding: np.ndarray | None = None


class InferenceEngine:
    def __init__(
        self,
        model: LoadedModel | None,
        *,
        options: ModelOptions,
        max_batch: int,
        max_wait_s: float,
        queue_size: int,
    ) -> None:
        self._model = model
        self._options = options
        self._replacing = threading.Lock()
        self.images_run = 0
        self.batch_size_counts: Counter[int] = Counter()
        self._worker: BatchWorker[np.ndarray, Prediction] = BatchWorker(
            self._run,
            name="inference",
            max_batch=max_batch,
            max_wait_s=max_wait_s,
            queue_size=queue_size,
        )

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    @property
    def capacity(self) -> int:
        """How many photos can be waiting or running at once."""
        return self._worker.queue_size + (self._worker.max_batch or 0)

    @property
    def queue_depth(self) -> int:
        return self._worker.queue_depth

    def swap(self, model: LoadedModel) -> LoadedModel | None:
        """Serve ``model`` from the next batch on; it must already be loaded and validated."""
        previous, self._model = self._model, model
        log.info("Serving model %s (was %s)", model.version, previous.version if previous else None)
        return previous

    def replace(self, path: Path, version: str) -> LoadedModel:
        """Load and validate the model at ``path``, then serve it. Until it has passed, the current
        model keeps serving; a file that fails raises ModelLoadError and changes nothing.
        Slow (loading, maybe an ONNX export): call it from a worker thread."""
        with self._replacing:
            model = load_model(path, self._options, version=version)
            self.swap(model)
            return model

    def submit(self, model_input: np.ndarray) -> Future[Prediction]:
        """Raises QueueFull (core/batch_worker.py) when the queue is full, NoModel without one."""
        if self._model is None:
            raise NoModel
        return self._worker.submit(model_input)

    def close(self) -> None:
        self._worker.close()

    def _run(self, inputs: list[np.ndarray]) -> list[Prediction]:
        """One batch on the model that is current now; a swap during it changes the next."""
        model = self._model
        if model is None:
            raise NoModel
        output = model.runner.run(np.stack(inputs))
        probabilities = softmax(output.logits)
        embeddings = None if output.features is None else compress(output.features)
        self.images_run += len(inputs)
        self.batch_size_counts[len(inputs)] += 1
        return [
            Prediction(row, model.version, None if embeddings is None else embeddings[index])
            for index, row in enumerate(probabilities)
        ]
