"""Which active-learning strategy saves the most expert labels, on real HAM10000 photos.

Pool-based simulation on ham10000-dev: the ``train`` split is the unlabelled pool (its true
labels play the expert), the lesion-disjoint ``test`` split measures the model. Each round a
small CNN (32x32 input, so a run fits a CPU) is trained from scratch on the labels so far with
class-balanced sampling, scores the pool, and the strategy picks the next batch to "label". The
strategies are the server's own (allcare.ml.active_learning), fed with the model's class
probabilities and penultimate-layer features, exactly what the server stores for each photo.

Prints balanced accuracy (and melanoma recall) per round, averaged over seeds, and how many
labels each strategy needs to reach the balanced accuracy random selection ends with.

    .venv/bin/python bench/active_learning.py [--rounds 8] [--batch 100] [--seeds 2]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
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


def simulate(
    run: str,
    pool: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    rounds: int,
    batch: int,
    epochs: int,
    seed: int,
) -> list[tuple[int, float, float | None]]:
    images, truth = pool
    rng = np.random.default_rng(seed)
    labelled = np.zeros(len(truth), dtype=bool)
    labelled[rng.choice(len(truth), batch, replace=False)] = True
    strategy = STRATEGIES["margin" if run == "margin+safeguard" else run]
    history = []
    for round_index in range(rounds + 1):
        model = train(images[labelled], truth[labelled], epochs, seed + round_index)
        scores = evaluate(predict(model, test[0])[0], test[1])
        history.append((int(labelled.sum()), scores["balanced_accuracy"], scores["mel_recall"]))
        if round_index == rounds:
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
        chosen = select(candidates, instance, batch, mel_quota=quota, mel_suspicion=0.3)
        labelled[unlabelled[chosen.cases]] = True
    return history


def labels_to_reach(history: list[tuple[int, float, float | None]], target: float) -> str:
    for labels, balanced, _ in history:
        if balanced >= target:
            return str(labels)
    return f">{history[-1][0]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    if not HAM.exists():
        raise SystemExit(f"{HAM} not found")
    torch.set_num_threads(2)
    started = time.perf_counter()
    pool, test = load_split("train"), load_split("test")
    print(
        f"pool {len(pool[1])} photos, test {len(test[1])} photos "
        f"(loaded in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    results: dict[str, np.ndarray] = {}
    mel: dict[str, np.ndarray] = {}
    for run in RUNS:
        started = time.perf_counter()
        per_seed = [
            simulate(run, pool, test, args.rounds, args.batch, args.epochs, seed)
            for seed in range(args.seeds)
        ]
        results[run] = np.array([[h[1] for h in history] for history in per_seed]).mean(axis=0)
        mel[run] = np.array([[h[2] or 0.0 for h in history] for history in per_seed]).mean(axis=0)
        print(f"{run}: {time.perf_counter() - started:.0f} s", flush=True)
    labels = [args.batch * (i + 1) for i in range(args.rounds + 1)]
    print(
        f"\nBalanced accuracy on the test split (mean of {args.seeds} seeds); "
        "melanoma recall in brackets"
    )
    print(f"{'labels':>6} " + " ".join(f"{run:>17}" for run in RUNS))
    for index, count in enumerate(labels):
        cells = " ".join(f"{results[run][index]:>9.3f} ({mel[run][index]:.2f})" for run in RUNS)
        print(f"{count:>6} {cells}")
    target = float(results["random"][-1])
    print(f"\nLabels needed to reach {target:.3f} (random selection's final balanced accuracy):")
    for run in RUNS:
        history = [(labels[i], float(results[run][i]), None) for i in range(len(labels))]
        print(f"  {run:<18} {labels_to_reach(history, target)}")


if __name__ == "__main__":
    main()
