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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import model_file, photos, rss_mb, time_ms

from allcare.core.config import Settings
from allcare.ml.loading import LoadedModel, ModelOptions, load_model
from allcare.ml.photo import PhotoLimits, check_photo

LIMITS = PhotoLimits(max_pixels=50_000_000, min_side=64)


@dataclass
class RawResults:
    forward_ms: dict[str, dict[int, float]]
    best_runtime: str
    pipeline_b1_ms: dict[str, float]
    pipeline_batched_per_s: dict[str, float]
    decode_ms: dict[str, float]
    model_runtime_rss_mb: float


def measure(
    model_path: Path, repeat: int, runtimes: tuple[str, ...] = ("onnx", "torch")
) -> RawResults:
    threads, _ = Settings().thread_budget
    cache = Path(tempfile.mkdtemp(prefix="allcare-bench-cache-"))
    base_rss = rss_mb()[0]
    models: dict[str, LoadedModel] = {}
    forward: dict[str, dict[int, float]] = {}
    onnx_rss = 0.0
    for runtime in runtimes:
        model = load_model(model_path, ModelOptions(runtime, "cpu", threads, cache))
        if runtime == "onnx":
            onnx_rss = rss_mb()[0] - base_rss
        models[runtime] = model
        forward[runtime] = {}
        for batch in (1, 8):
            inputs = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), np.float32)
            reps = repeat if batch == 1 else max(3, repeat // 4)
            forward[runtime][batch] = (
                time_ms(lambda m=model, x=inputs: m.runner.run(x), reps) / batch
            )
    best = min(forward, key=lambda r: forward[r][1])
    runner = models[best].runner
    pipeline_b1, batched, decode = {}, {}, {}
    for name, data in photos().items():
        decode[name] = time_ms(lambda d=data: check_photo(d, LIMITS), repeat)
        pipeline_b1[name] = time_ms(
            lambda d=data: runner.run(check_photo(d, LIMITS).model_input[None]), repeat
        )

        def eight(d: bytes = data) -> None:
            runner.run(np.stack([check_photo(d, LIMITS).model_input for _ in range(8)]))

        batched[name] = 8000 / time_ms(eight, max(3, repeat // 4))
    return RawResults(forward, best, pipeline_b1, batched, decode, onnx_rss)


def print_table(results: RawResults) -> None:
    print("Raw forward pass, ms per image (ResNet50 fp32, CPU)")
    print(f"{'runtime':<8} {'batch 1':>9} {'batch 8':>9}")
    for runtime, per_batch in results.forward_ms.items():
        print(f"{runtime:<8} {per_batch[1]:>9.1f} {per_batch[8]:>9.1f}")
    print(f"\nRaw pipeline with {results.best_runtime} (reduced-size decode + checks + forward)")
    print(f"{'photo':<10} {'decode ms':>10} {'b1 ms':>8} {'b8 img/s':>9}")
    for name in results.pipeline_b1_ms:
        print(
            f"{name:<10} {results.decode_ms[name]:>10.1f} {results.pipeline_b1_ms[name]:>8.1f} "
            f"{results.pipeline_batched_per_s[name]:>9.1f}"
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
