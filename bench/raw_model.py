"""Raw model cost, without any server: forward time per image with each runtime at batch 1 and 8,
and the raw pipeline (reduced-size JPEG decode and checks + the best runtime) per photo size.

    .venv/bin/python bench/raw_model.py [--model FILE] [--repeat N]

Uses the server's own code paths (allcare.ml) and thread budget (core/config.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import model_file, photos, rss_mb, time_ms

from allcare.core.config import Settings
from allcare.ml.loading import ModelOptions, load_model
from allcare.ml.photo import PhotoLimits, check_photo
from allcare.ml.runners import Runner

LIMITS = PhotoLimits(max_pixels=50_000_000, min_side=64)


@dataclass(frozen=True)
class PipelinePoint:
    """The raw pipeline for one photo: batch-1 latency, batch-8 throughput, CPU per photo."""

    b1_ms: float
    batched_per_s: float
    cpu_ms: float


class RawPipeline:
    """Reduced-size decode and checks, then the forward pass, on one loaded runner: measured as
    often as a comparison needs (the server benchmark measures it next to each load level)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def measure(self, data: bytes, repeat: int) -> PipelinePoint:
        b1 = time_ms(lambda: self.runner.run(check_photo(data, LIMITS).model_input[None]), repeat)

        def eight() -> None:
            self.runner.run(np.stack([check_photo(data, LIMITS).model_input for _ in range(8)]))

        rounds = max(3, repeat // 4)
        eight()
        eight()
        cpu_before = time.process_time()
        batched = 8000 / time_ms(eight, rounds, warmup=0)
        return PipelinePoint(b1, batched, (time.process_time() - cpu_before) * 1000 / (8 * rounds))


@dataclass
class RawResults:
    forward_ms: dict[str, dict[int, float]]
    best_runtime: str
    pipeline: dict[str, PipelinePoint]
    decode_ms: dict[str, float]
    model_runtime_rss_mb: float


def load_runner(model_path: Path, runtime: str) -> Runner:
    """The model as the server loads it (same thread budget), ONNX exported to a temp cache."""
    threads, _ = Settings().thread_budget
    cache = Path(tempfile.mkdtemp(prefix="allcare-bench-cache-"))
    return load_model(model_path, ModelOptions(runtime, "cpu", threads, cache)).runner


def measure(
    model_path: Path, repeat: int, runtimes: tuple[str, ...] = ("onnx", "torch")
) -> RawResults:
    base_rss = rss_mb()[0]
    runners: dict[str, Runner] = {}
    forward: dict[str, dict[int, float]] = {}
    onnx_rss = 0.0
    for runtime in runtimes:
        runner = load_runner(model_path, runtime)
        if runtime == "onnx":
            onnx_rss = rss_mb()[0] - base_rss
        runners[runtime] = runner
        forward[runtime] = {}
        for batch in (1, 8):
            inputs = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), np.float32)
            reps = repeat if batch == 1 else max(3, repeat // 4)
            forward[runtime][batch] = time_ms(lambda r=runner, x=inputs: r.run(x), reps) / batch
    best = min(forward, key=lambda r: forward[r][1])
    pipeline = RawPipeline(runners[best])
    points, decode = {}, {}
    for name, data in photos().items():
        decode[name] = time_ms(lambda d=data: check_photo(d, LIMITS), repeat)
        points[name] = pipeline.measure(data, repeat)
    return RawResults(forward, best, points, decode, onnx_rss)


def print_table(results: RawResults) -> None:
    print("Raw forward pass, ms per image (ResNet50 fp32, CPU)")
    print(f"{'runtime':<8} {'batch 1':>9} {'batch 8':>9}")
    for runtime, per_batch in results.forward_ms.items():
        print(f"{runtime:<8} {per_batch[1]:>9.1f} {per_batch[8]:>9.1f}")
    print(f"\nRaw pipeline with {results.best_runtime} (reduced-size decode + checks + forward)")
    print(f"{'photo':<10} {'decode ms':>10} {'b1 ms':>8} {'b8 img/s':>9} {'b8 CPU ms/img':>13}")
    for name, point in results.pipeline.items():
        print(
            f"{name:<10} {results.decode_ms[name]:>10.1f} {point.b1_ms:>8.1f} "
            f"{point.batched_per_s:>9.1f} {point.cpu_ms:>13.1f}"
        )
    print(f"\nModel runtime memory (ONNX Runtime session): {results.model_runtime_rss_mb:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file (default: random-weight resnet50)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    path = args.model or model_file(Path(tempfile.mkdtemp(prefix="allcare-bench-")))
    results = measure(path, args.repeat)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results.__dict__, indent=2))


if __name__ == "__main__":
    main()
