"""The one worker-thread mechanism behind inference batching and the audit's group commit."""

import threading
from concurrent.futures import Future

import pytest

from allcare.core.batch_worker import BatchWorker, QueueFull


class Held:
    """A handler that records each batch and can hold the thread inside a batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        self.entered.set()
        assert self.gate.wait(10)
        if -1 in items:
            raise ValueError("a bad item")
        return [item * 10 for item in items]

    def hold(self) -> None:
        self.entered.clear()
        self.gate.clear()


@pytest.fixture
def made():
    workers: list[BatchWorker] = []

    def make(handler: Held, **options: object) -> BatchWorker[int, int]:
        workers.append(BatchWorker(handler, name="test", **options))  # type: ignore[arg-type]
        return workers[-1]

    yield make
    for worker in workers:
        worker.close()


def test_waiting_items_share_a_batch_and_results_keep_their_order(made) -> None:
    handler = Held()
    worker = made(handler, max_batch=4)
    handler.hold()
    first = worker.submit(0)
    assert handler.entered.wait(10)
    waiting = [worker.submit(item) for item in range(1, 7)]
    handler.gate.set()
    assert first.result(10) == 0
    assert [future.result(10) for future in waiting] == [10, 20, 30, 40, 50, 60]
    assert handler.batches == [[0], [1, 2, 3, 4], [5, 6]]


def test_a_bounded_queue_refuses_instead_of_waiting(made) -> None:
    handler = Held()
    worker = made(handler, max_batch=1, queue_size=2)
    handler.hold()
    running = worker.submit(0)
    assert handler.entered.wait(10)
    queued = [worker.submit(1), worker.submit(2)]
    with pytest.raises(QueueFull):
        worker.submit(3)
    handler.gate.set()
    assert [f.result(10) for f in [running, *queued]] == [0, 10, 20]


def test_a_cancelled_item_is_dropped_and_the_thread_goes_on(made) -> None:
    handler = Held()
    worker = made(handler, max_batch=8)
    handler.hold()
    running = worker.submit(0)
    assert handler.entered.wait(10)
    cancelled = worker.submit(1)
    kept = worker.submit(2)
    assert cancelled.cancel()
    handler.gate.set()
    assert (running.result(10), kept.result(10)) == (0, 20)
    assert [1] not in handler.batches
    assert all(1 not in batch for batch in handler.batches)
    assert worker.submit(3).result(10) == 30


def test_run_cancelled_handles_the_item_but_drops_its_result(made) -> None:
    handler = Held()
    worker = made(handler, run_cancelled=True)
    handler.hold()
    running = worker.submit(0)
    assert handler.entered.wait(10)
    cancelled: Future[int] = worker.submit(1)
    assert cancelled.cancel()
    later = worker.submit(2)
    handler.gate.set()
    assert later.result(10) == 20
    assert running.result(10) == 0
    assert handler.batches[1] == [1, 2]
    assert cancelled.cancelled()


def test_a_failing_batch_fails_its_futures_and_not_the_thread(made) -> None:
    handler = Held()
    worker = made(handler, max_batch=8)
    handler.hold()
    worker.submit(0)
    assert handler.entered.wait(10)
    bad, neighbour = worker.submit(-1), worker.submit(5)
    handler.gate.set()
    with pytest.raises(ValueError, match="a bad item"):
        bad.result(10)
    with pytest.raises(ValueError, match="a bad item"):
        neighbour.result(10)
    assert worker.submit(7).result(10) == 70


def test_a_lone_item_never_waits_for_the_linger(made) -> None:
    handler = Held()
    worker = made(handler, max_batch=8, max_wait_s=30)
    assert worker.submit(4).result(5) == 40  # 30 s linger would time this out


def test_close_handles_what_is_queued_first(made) -> None:
    handler = Held()
    worker = made(handler)
    handler.hold()
    futures = [worker.submit(item) for item in range(3)]
    assert handler.entered.wait(10)
    handler.gate.set()
    worker.close()
    assert [f.result(1) for f in futures] == [0, 10, 20]
