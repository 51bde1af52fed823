import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from allcare.core.batch_worker import QueueFull
from allcare.ml.batching import InferenceEngine, NoModel
from allcare.ml.classes import CLASS_NAMES
from allcare.ml.loading import LoadedModel, ModelOptions, load_model
from allcare.ml.model_source import ModelLoadError
from tests.models import tiny_torchscript

INPUT = np.random.default_rng(0).standard_normal((3, 224, 224)).astype(np.float32)


def tiny(tmp_path: Path, name: str, favour: int) -> LoadedModel:
    options = ModelOptions("torch", "cpu", 2, tmp_path)
    return load_model(
        tiny_torchscript(tmp_path / f"{name}.pt", favour=favour), options, version=name
    )


@pytest.fixture
def engine(tmp_path: Path):
    engines: list[InferenceEngine] = []

    def make(model: LoadedModel | None, **kwargs: object) -> InferenceEngine:
        values = {
            "options": ModelOptions("torch", "cpu", 2, tmp_path),
            "max_batch": 8,
            "max_wait_s": 0.002,
            "queue_size": 64,
        } | kwargs
        engines.append(InferenceEngine(model, **values))  # type: ignore[arg-type]
        return engines[-1]

    yield make
    for made in engines:
        made.close()


def test_concurrent_requests_are_batched(engine, tmp_path: Path) -> None:
    running = engine(tiny(tmp_path, "a", favour=0))
    futures = [running.submit(INPUT) for _ in range(32)]
    results = [future.result(timeout=10) for future in futures]
    assert running.images_run == 32
    assert sum(running.batch_size_counts.values()) < 32
    assert sum(size * n for size, n in running.batch_size_counts.items()) == 32
    for result in results:
        assert result.probabilities.shape == (len(CLASS_NAMES),)
        assert abs(result.probabilities.sum() - 1) < 1e-6
    assert np.allclose(results[0].probabilities, results[-1].probabilities, atol=1e-6)


def test_full_queue_refuses_instead_of_waiting(engine, tmp_path: Path) -> None:
    model = tiny(tmp_path, "a", favour=0)
    gate = threading.Event()
    real_run = model.runner.run

    def blocked_run(batch: np.ndarray) -> np.ndarray:
        gate.wait(10)
        return real_run(batch)

    object.__setattr__(model.runner, "run", blocked_run)
    running = engine(model, queue_size=2, max_batch=1)
    first = running.submit(INPUT)  # taken by the inference thread, blocked there
    while running.queue_depth:
        pass
    queued = [running.submit(INPUT), running.submit(INPUT)]
    with pytest.raises(QueueFull):
        running.submit(INPUT)
    gate.set()
    assert all(f.result(timeout=10) for f in [first, *queued])


def test_no_model_is_refused(engine) -> None:
    with pytest.raises(NoModel):
        engine(None).submit(INPUT)


def test_swapping_models_under_load_loses_no_request(engine, tmp_path: Path) -> None:
    old, new = tiny(tmp_path, "old", favour=0), tiny(tmp_path, "new", favour=4)
    running = engine(old)

    def one_request(_: int) -> tuple[str, str]:
        result = running.submit(INPUT).result(timeout=30)
        return result.model_version, CLASS_NAMES[int(result.probabilities.argmax())]

    with ThreadPoolExecutor(8) as pool:
        before = list(pool.map(one_request, range(40)))
        swapping = pool.submit(running.swap, new)
        during = list(pool.map(one_request, range(80)))
        swapping.result()
        after = list(pool.map(one_request, range(40)))
    assert set(before) == {("old", "akiec")}
    assert set(during) <= {("old", "akiec"), ("new", "mel")}
    assert set(after) == {("new", "mel")}
    assert running.images_run == 160


def test_replace_serves_a_model_only_after_it_loaded(engine, tmp_path: Path) -> None:
    running = engine(tiny(tmp_path, "old", favour=0))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError):
        running.replace(broken, "broken")
    assert running.model is not None
    assert running.model.version == "old"
    assert running.submit(INPUT).result(timeout=10).model_version == "old"

    loaded = running.replace(tiny_torchscript(tmp_path / "new.pt", favour=4), "new")
    assert loaded.version == running.model.version == "new"
    result = running.submit(INPUT).result(timeout=10)
    assert (result.model_version, CLASS_NAMES[int(result.probabilities.argmax())]) == ("new", "mel")


def test_replace_gives_an_engine_without_a_model_its_first(engine, tmp_path: Path) -> None:
    running = engine(None)
    running.replace(tiny_torchscript(tmp_path / "first.pt"), "first")
    assert running.submit(INPUT).result(timeout=10).model_version == "first"


def test_a_cancelled_request_never_stops_the_inference_thread(engine, tmp_path: Path) -> None:
    """A request that goes away cancels its future; the thread must drop that job and go on
    (setting a cancelled future's result raised and ended the thread: every later upload
    hung until the queue was full, then answered 503 for ever)."""
    model = tiny(tmp_path, "a", favour=0)
    running = engine(model, max_batch=1)
    entered, gate = threading.Event(), threading.Event()
    real_run = model.runner.run

    def held_run(batch: np.ndarray):
        entered.set()
        gate.wait(10)
        return real_run(batch)

    model.runner.run = held_run  # type: ignore[method-assign]
    busy = running.submit(INPUT)
    assert entered.wait(10)  # its batch is running, held at the gate
    queued = [running.submit(INPUT) for _ in range(3)]
    assert all(future.cancel() for future in queued)
    gate.set()
    assert busy.result(timeout=10).model_version == "a"
    after = [running.submit(INPUT) for _ in range(4)]
    assert [f.result(timeout=10).model_version for f in after] == ["a"] * 4
