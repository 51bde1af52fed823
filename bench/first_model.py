"""A clinic's first model on ham10000-dev: `allcare train` on the whole `train` split, then its
metrics on the lesion-disjoint `val` and `test` splits with 95 % bootstrap intervals (resampled
by lesion), at the server's operating point (the top class).

    .venv/bin/python bench/first_model.py                  # trains (about an hour on 2 cores)
    .venv/bin/python bench/first_model.py --model FILE     # only evaluates a trained model

Training uses `allcare train`'s defaults unless told otherwise: EfficientNet-Lite0 from ImageNet
weights, stem and first three stages frozen, 6 epochs of 7,010 class-balanced draws, batch 32,
AdamW 5e-4 with warm-up and cosine decay, the moving average of the weights (EMA), seed 0.
"""

from __future__ import annotations

import argparse
import base64
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import HAM

from allcare.ml.classes import CLASS_NAMES
from allcare.ml.evaluation import evaluate
from allcare.ml.loading import ModelOptions, load_model, predict
from allcare.ml.paired_bootstrap import metric_interval
from allcare.ml.photo import model_input_of


def train(storage: Path, seed: int, extra: list[str]) -> tuple[Path, float]:
    env = os.environ | {
        "STORAGE_ROOT": str(storage),
        "ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    command = [sys.executable, "-m", "allcare", "train", str(HAM), "--seed", str(seed), *extra]
    started = time.monotonic()
    subprocess.run(command, env=env, check=True)
    seconds = time.monotonic() - started
    [model] = sorted((storage / "models").glob("v*/model.pt"))
    return model, seconds


def split_rows(split: str) -> list[dict[str, str]]:
    with (HAM / "labels.csv").open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["split"] == split]


def measure(model_path: Path, split: str, seed: int) -> dict[str, object]:
    rows = split_rows(split)
    model = load_model(
        model_path, ModelOptions("onnx", "cpu", os.cpu_count() or 1, model_path.parent)
    )
    started = time.monotonic()
    inputs = [model_input_of((HAM / "images" / f"{r['image_id']}.jpg").read_bytes()) for r in rows]
    probabilities = predict(model, inputs, batch_size=32)
    seconds = time.monotonic() - started
    labels = np.array([CLASS_NAMES.index(r["dx"]) for r in rows])
    groups = np.array([r["lesion_id"] for r in rows])
    point = evaluate(probabilities, labels)
    intervals = metric_interval(labels, probabilities, groups, seed=seed)
    return {"split": split, "point": point, "intervals": intervals, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="evaluate this model file instead of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("train_args", nargs="*", help="more `allcare train` options, after --")
    args = parser.parse_args()
    if not HAM.exists():
        raise SystemExit(f"{HAM} not found: this benchmark needs ham10000-dev")
    training_seconds = None
    if args.model is None:
        storage = Path(tempfile.mkdtemp(prefix="first-model-"))
        args.model, training_seconds = train(storage, args.seed, args.train_args)
    print(f"model {args.model}, seed {args.seed}, {os.cpu_count()} cores")
    if training_seconds is not None:
        print(
            f"training (allcare train, incl. its val evaluation): {training_seconds / 60:.1f} min"
        )
    print(
        "| split | photos | balanced accuracy (95% CI) | melanoma sensitivity (95% CI) "
        "| ECE (95% CI) | accuracy |"
    )
    print("|---|---|---|---|---|---|")
    for split in ("val", "test"):
        result = measure(args.model, split, args.seed)
        cells = []
        for name in ("balanced_accuracy", "mel_recall", "ece"):
            interval = result["intervals"][name]
            cells.append(f"{interval.estimate:.3f} ({interval.low:.3f}-{interval.high:.3f})")
        point = result["point"]
        print(f"| {split} | {point['n']} | {' | '.join(cells)} | {point['accuracy']:.3f} |")
        recall = ", ".join(f"{k} {v:.2f}" for k, v in point["per_class_recall"].items())
        print(f"|  | per-class recall: {recall}; scored in {result['seconds']:.0f} s |||||")


if __name__ == "__main__":
    main()
