"""One inference thread that groups concurrent requests into micro-batches and can swap models.

Requests wait in a bounded queue. The thread takes the first waiting request, everything else
already queued (up to the batch size), and, only if others were waiting, lingers up to
``max_wait`` for more. A lone request therefore never waits. Each batch runs on the model that is
current when the batch starts; a swap replaces that reference, so batches in flight finish on the
old model and no request fails because of a swap.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from allcare.ml.embeddings import compress
from allcare.ml.loading import LoadedModel, ModelOptions, load_model
from allcare.ml.runners import softmax

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More requests are waiting than the queue holds; the client should retry shortly."""


class NoModel(Exception):
    pass


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray
    model_version: str
    embedding: np.ndarray | None = None


@dataclass
class _Job:
    model_input: np.ndarray
    future: Future[Prediction]


_STOP = object()


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
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: queue.Queue[_Job | object] = queue.Queue(maxsize=queue_size)
        self.images_run = 0
        self.batch_size_counts: Counter[int] = Counter()
        self._thread = threading.Thread(target=self._serve, name="inference", daemon=True)
        self._thread.start()

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    @property
    def capacity(self) -> int:
        """How many photos can be waiting or running at once."""
        return self._queue.maxsize + self._max_batch

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

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
        if self._model is None:
            raise NoModel
        job = _Job(model_input, Future())
        try:
            self._queue.put_nowait(job)
        except queue.Full as exc:
            raise QueueFull from exc
        return job.future

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _serve(self) -> None:
        """The one inference thread: it survives anything a caller or a model does."""
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            try:
                batch, stop = self._gather(first)
                self._run([job for job in batch if job.future.set_running_or_notify_cancel()])
            except Exception:
                log.exception("The inference thread caught an error and goes on")
                continue
            if stop:
                return

    def _gather(self, first: object) -> tuple[list[_Job], bool]:
        assert isinstance(first, _Job)
        batch = [first]
        deadline = None
        while len(batch) < self._max_batch:
            try:
                if deadline is None:
                    item = self._queue.get_nowait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    item = self._queue.get(timeout=remaining)
            except queue.Empty:
                if deadline is not None or len(batch) == 1 or self._max_wait_s <= 0:
                    break
                deadline = time.monotonic() + self._max_wait_s
                continue
            if item is _STOP:
                return batch, True
            assert isinstance(item, _Job)
            batch.append(item)
        return batch, False

    def _run(self, batch: list[_Job]) -> None:
        """``batch`` holds running futures only (a cancelled request's job was dropped), so
        none can be cancelled while its result is set."""
        if not batch:
            return
        model = self._model
        try:
            if model is None:
                raise NoModel
            inputs = np.stack([job.model_input for job in batch])
            output = model.runner.run(inputs)
            probabilities = softmax(output.logits)
            embeddings = None if output.features is None else compress(output.features)
        except Exception as exc:
            log.exception("Inference failed for a batch of %d", len(batch))
            for job in batch:
                job.future.set_exception(exc)
            return
        self.images_run += len(batch)
        self.batch_size_counts[len(batch)] += 1
        for index, (job, row) in enumerate(zip(batch, probabilities, strict=True)):
            embedding = None if embeddings is None else embeddings[index]
            job.future.set_result(Prediction(row, model.version, embedding))
