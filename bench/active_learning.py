"""Which active-learning strategy saves the most expert labels, on real HAM10000 photos.

Pool-based simulation on ham10000-dev: the ``train`` split is the unlabelled pool (its true
labels play the expert). Each round a small CNN (32x32 input, so a run fits a CPU) is trained
from scratch on the labels so far with class-balanced sampling, scores the pool, and the
strategy picks the next batch to "label". The strategies are the server's own
(allcare.ml.active_learning), fed with the model's class probabilities and penultimate-layer
features, exactly what the server stores for each photo.

The strategy is *chosen* on the ``val`` split (highest mean balanced accuracy over the rounds
after the first) and *reported* on the lesion-disjoint ``test`` split, which plays no part in the
choice: balanced accuracy and melanoma recall per strategy and budget, mean over seeds with a
95 % t-interval over seeds, and the chosen strategy's paired gain over random selection.

    .venv/bin/python bench/active_learning.py [--rounds 8] [--batch 100] [--seeds 5] [--out F]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import stats
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _common import HAM

from allcare.ml.active_learning import STRATEGIES, Pool, select
from allcare.ml.classes import CLASS_NAMES
from allcare.ml.evaluation import evaluate

SIZE = 32
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)
RUNS = ("random", "margin", "entropy", "least_confidence", "diversity", "margin+safeguard")


def load_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Photos of one split as a normalised (N, 3, 32, 32) array, and their class indices."""
    with (HAM / "labels.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == split]
    images = np.empty((len(rows), 3, SIZE, SIZE), dtype=np.float32)
    for index, row in enumerate(rows):
        with Image.open(HAM / "images" / f"{row['image_id']}.jpg") as photo:
            small = photo.convert("RGB").resize((SIZE * 4 // 3, SIZE), Image.Resampling.BILINEAR)
            left = (small.width - SIZE) // 2
            array = np.asarray(small.crop((left, 0, left + SIZE, SIZE)), dtype=np.float32)
        images[index] = array.transpose(2, 0, 1) / 255.0
    labels = np.array([CLASS_NAMES.index(row["dx"]) for row in rows])
    return (images - MEAN) / STD, labels


class SmallCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()
            )

        self.features = nn.Sequential(
            block(3, 16),
            nn.MaxPool2d(2),
            block(16, 32),
            nn.MaxPool2d(2),
            block(32, 64),
            nn.MaxPool2d(2),
            block(64, 64),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(64, len(CLASS_NAMES)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return self.head(features), features


def train(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int) -> SmallCnn:
    torch.manual_seed(seed)
    model = SmallCnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    weights = torch.tensor([1.0 / counts[label] for label in labels])
    data, targets = torch.from_numpy(images), torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.multinomial(weights, len(labels), replacement=True, generator=generator)
        for start in range(0, len(order) - 1, 32):
            batch = order[start : start + 32]
            if len(batch) < 2:
                continue
            inputs = data[batch]
            if torch.rand(1, generator=generator) < 0.5:
                inputs = inputs.flip(3)
            inputs = torch.rot90(inputs, int(torch.randint(4, (1,), generator=generator)), (2, 3))
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(inputs)[0], targets[batch])
            loss.backward()
            optimizer.step()
    model.eval()
    return model


def predict(model: SmallCnn, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        outputs = [model(torch.from_numpy(images[i : i + 512])) for i in range(0, len(images), 512)]
    logits = torch.cat([o[0] for o in outputs])
    return torch.softmax(logits, 1).numpy(), torch.cat([o[1] for o in outputs]).numpy()


Split = tuple[np.ndarray, np.ndarray]


@dataclass
class History:
    """One strategy, one seed: labels so far and the scores after each round."""

    labels: list[int] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    test_mel: list[float] = field(default_factory=list)


def simulate(
    run: str, pool: Split, val: Split, test: Split, args: argparse.Namespace, seed: int
) -> History:
    images, truth = pool
    rng = np.random.default_rng(seed)
    labelled = np.zeros(len(truth), dtype=bool)
    labelled[rng.choice(len(truth), args.batch, replace=False)] = True
    strategy = STRATEGIES["margin" if run == "margin+safeguard" else run]
    history = History()
    for round_index in range(args.rounds + 1):
        model = train(images[labelled], truth[labelled], args.epochs, seed + round_index)
        on_test = evaluate(predict(model, test[0])[0], test[1])
        history.labels.append(int(labelled.sum()))
        history.val.append(evaluate(predict(model, val[0])[0], val[1])["balanced_accuracy"])
        history.test.append(on_test["balanced_accuracy"])
        history.test_mel.append(on_test["mel_recall"] or 0.0)
        if round_index == args.rounds:
            break
        unlabelled = np.flatnonzero(~labelled)
        probabilities, features = predict(model, images[unlabelled])
        candidates = Pool(
            size=len(unlabelled),
            probabilities=probabilities.astype(np.float64),
            image_case=np.arange(len(unlabelled)),
            age=np.arange(len(unlabelled), dtype=np.float64),
            embeddings=lambda chosen, f=features: f[chosen],
        )
        instance = strategy(seed=seed + round_index) if run == "random" else strategy()  # type: ignore[call-arg]
        quota = 0.2 if run == "margin+safeguard" else 0.0
        chosen = select(candidates, instance, args.batch, mel_quota=quota, mel_suspicion=0.3)
        labelled[unlabelled[chosen.cases]] = True
    return history


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean over seeds and its 95 % t-interval (the seeds are the independent repetitions)."""
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def cell(values: np.ndarray) -> str:
    mean, low, high = interval(values)
    return f"{mean:.3f} ({low:.3f}-{high:.3f})"


def report(results: dict[str, list[History]], seeds: int) -> dict[str, object]:
    """Choose on val, report on test; returns what --out writes."""
    val_area = {run: np.mean([np.mean(h.val[1:]) for h in runs]) for run, runs in results.items()}
    chosen = max(val_area, key=lambda run: val_area[run])
    budgets = results["random"][0].labels
    print(f"\nMean val balanced accuracy over rounds 2-{len(budgets)} (the choice):")
    for run, area in sorted(val_area.items(), key=lambda item: -item[1]):
        print(f"  {run:<18} {area:.3f}" + ("  <- chosen" if run == chosen else ""))
    for title, metric in (
        ("Balanced accuracy", "test"),
        ("Melanoma recall", "test_mel"),
    ):
        print(f"\n{title} on test, mean of {seeds} seeds (95 % t-interval over seeds):\n")
        print("| labels | " + " | ".join(results) + " |")
        print("|---" * (len(results) + 1) + "|")
        for index, count in enumerate(budgets):
            cells = [
                cell(np.array([getattr(h, metric)[index] for h in runs]))
                for runs in results.values()
            ]
            print(f"| {count} | " + " | ".join(cells) + " |")
    print(f"\n{chosen} minus random on test, paired by seed:\n")
    print("| labels | balanced accuracy gain | melanoma recall gain |")
    print("|---|---|---|")
    gains = []
    for index, count in enumerate(budgets):
        pairs = list(zip(results[chosen], results["random"], strict=True))
        gain = np.array([c.test[index] - r.test[index] for c, r in pairs])
        mel = np.array([c.test_mel[index] - r.test_mel[index] for c, r in pairs])
        gains.append({"labels": count, "gain": interval(gain), "mel_gain": interval(mel)})
        print(f"| {count} | {cell(gain)} | {cell(mel)} |")
    return {
        "chosen": chosen,
        "val_area": val_area,
        "gains_over_random": gains,
        "histories": {run: [h.__dict__ for h in runs] for run, runs in results.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the histories and the choice as JSON")
    args = parser.parse_args()
    if not HAM.exists():
        raise SystemExit(f"{HAM} not found")
    torch.set_num_threads(2)
    started = time.perf_counter()
    pool, val, test = load_split("train"), load_split("val"), load_split("test")
    print(
        f"pool {len(pool[1])} photos, val {len(val[1])}, test {len(test[1])} "
        f"(loaded in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    results: dict[str, list[History]] = {}
    for run in RUNS:
        started = time.perf_counter()
        results[run] = [simulate(run, pool, val, test, args, seed) for seed in range(args.seeds)]
        print(f"{run}: {time.perf_counter() - started:.0f} s", flush=True)
    written = report(results, args.seeds)
    if args.out:
        args.out.write_text(json.dumps(written, indent=1, default=float))


if __name__ == "__main__":
    main()
