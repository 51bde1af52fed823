"""One worker thread that takes submitted items in batches: the inference engine's micro-batches
and the access audit's group commit are both this, with different parameters.

In the manner of BentoML's ``CorkDispatcher`` and Ray Serve's ``_BatchQueue``: a bounded queue,
one thread, a future per item. The thread takes the first waiting item, everything else already
queued (up to ``max_batch``), and, only if others were waiting, lingers up to ``max_wait_s`` for
more, so a lone item never waits. Taking an item calls ``set_running_or_notify_cancel()``: an
item whose caller went away is dropped, or, with ``run_cancelled``, still handled with its
result dropped (an access happened even if nobody waits to hear it was recorded). Nothing a
handler or a caller does ends the thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class QueueFull(Exception):
    """More items are waiting than the queue holds; the caller should retry shortly."""


@dataclass
class _Job(Generic[Item, Result]):
    item: Item
    future: Future[Result]


_STOP = object()


class BatchWorker(Generic[Item, Result]):
    """``handle`` gets a batch of items and returns one result per item, in order; an
    exception fails the whole batch's futures."""

    def __init__(
        self,
        handle: Callable[[list[Item]], Sequence[Result]],
        *,
        name: str,
        max_batch: int | None = None,
        max_wait_s: float = 0.0,
        queue_size: int = 0,
        run_cancelled: bool = False,
    ) -> None:
        self._handle = handle
        self.name = name
        self.max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._run_cancelled = run_cancelled
        self._queue: queue.Queue[_Job[Item, Result] | object] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def queue_size(self) -> int:
        """0 when unbounded."""
        return self._queue.maxsize

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def submit(self, item: Item) -> Future[Result]:
        job: _Job[Item, Result] = _Job(item, Future())
        try:
            self._queue.put_nowait(job)
        except queue.Full as exc:
            raise QueueFull from exc
        return job.future

    def close(self, timeout_s: float = 30) -> None:
        """Items already queued are handled first."""
        self._queue.put(_STOP)
        self._thread.join(timeout=timeout_s)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            try:
                batch, stop = self._gather(first)
                self._run(batch)
            except Exception:
                log.exception("The %s thread caught an error and goes on", self.name)
                continue
            if stop:
                return

    def _gather(self, first: object) -> tuple[list[_Job[Item, Result]], bool]:
        assert isinstance(first, _Job)
        batch = [first]
        deadline = None
        while self.max_batch is None or len(batch) < self.max_batch:
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

    def _run(self, batch: list[_Job[Item, Result]]) -> None:
        """Only futures still listening (running, so no longer cancellable) get an outcome."""
        listening = [job for job in batch if job.future.set_running_or_notify_cancel()]
        handled = batch if self._run_cancelled else listening
        if not handled:
            return
        try:
            results = self._handle([job.item for job in handled])
        except Exception as exc:
            log.exception("The %s thread failed a batch of %d", self.name, len(handled))
            for job in handled:
                if job.future.running():
                    job.future.set_exception(exc)
            return
        for job, result in zip(handled, results, strict=True):
            if job.future.running():
                job.future.set_result(result)
