"""Fine-tuning a classifier on labelled photos: class-balanced sampling, light augmentation, and
the serving transform (ml/preprocess.py) on every sample, so training sees what inference sees.

No database and no files here: the caller hands over image loaders and labels, and gets the
trained module (in place) and one log row per epoch.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from allcare.core.clock import now_utc, wire_time
from allcare.ml.classes import NUM_CLASSES
from allcare.ml.preprocess import to_model_input
from allcare.ml.torch_runtime import first_output

OPTIMIZERS = ("Adam", "SGD", "AdamW", "RMSprop")


class TrainingCancelled(Exception):
    """The run was asked to stop; nothing it produced may be used."""


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-4
    optimizer: str = "Adam"
    dropout: float = 0.3
    augmentation: bool = True

    @classmethod
    def from_wire(cls, values: dict[str, Any]) -> TrainingConfig:
        return cls(
            epochs=int(values["epochs"]),
            batch_size=int(values["batch_size"]),
            learning_rate=float(values["learning_rate"]),
            optimizer=str(values["optimizer"]),
            dropout=float(values["dropout"]),
            augmentation=bool(values["augmentation_applied"]),
        )


@dataclass(frozen=True)
class Progress:
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    fraction: float
    eta_seconds: float | None


ImageLoader = Callable[[], Image.Image]


def augment(image: Image.Image, rng: random.Random) -> Image.Image:
    """Dermatoscopic lesions have no up or left: flips and quarter turns keep the label; mild
    crops and brightness or contrast changes mimic other framing and lighting."""
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    turns = rng.randrange(4)
    if turns:
        image = image.rotate(90 * turns, expand=True)
    scale = rng.uniform(0.8, 1.0)
    width, height = image.size
    crop_w, crop_h = max(1, int(width * scale)), max(1, int(height * scale))
    left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
    image = image.crop((left, top, left + crop_w, top + crop_h))
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.9, 1.1))
    return ImageEnhance.Contrast(image).enhance(rng.uniform(0.9, 1.1))


class LabelledPhotos(Dataset[tuple[torch.Tensor, int]]):
    def __init__(
        self, loaders: Sequence[ImageLoader], labels: Sequence[int], *, augmented: bool, seed: int
    ) -> None:
        self._loaders = loaders
        self._labels = labels
        self._augmented = augmented
        self._rng = random.Random(seed)  # noqa: S311 - augmentation, not security

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self._loaders[index]().convert("RGB")
        if self._augmented:
            image = augment(image, self._rng)
        return torch.from_numpy(to_model_input(image)), self._labels[index]


def class_balanced_sampler(labels: Sequence[int], seed: int) -> WeightedRandomSampler:
    """Every class is drawn equally often, however rare (melanoma is ~11 % of HAM10000)."""
    counts = np.bincount(np.asarray(labels), minlength=NUM_CLASSES)
    weights = [1.0 / counts[label] for label in labels]
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(weights, num_samples=len(labels), generator=generator)


def _optimizer(name: str, parameters: Any, learning_rate: float) -> torch.optim.Optimizer:
    if name == "Adam":
        return torch.optim.Adam(parameters, lr=learning_rate)
    if name == "AdamW":
        return torch.optim.AdamW(parameters, lr=learning_rate)
    if name == "SGD":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=0.9)
    if name == "RMSprop":
        return torch.optim.RMSprop(parameters, lr=learning_rate)
    raise ValueError(f"Unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")


def set_dropout(module: nn.Module, probability: float) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Dropout):
            layer.p = probability


def fine_tune(
    module: nn.Module,
    loaders: Sequence[ImageLoader],
    labels: Sequence[int],
    config: TrainingConfig,
    *,
    device: str = "cpu",
    seed: int = 0,
    on_progress: Callable[[Progress], None] = lambda _: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[dict[str, Any]]:
    """Train ``module`` in place; one log row per epoch (the legacy training_log.json rows)."""
    if len(labels) < 2:
        raise ValueError(f"Training needs at least 2 labelled images, got {len(labels)}")
    torch.manual_seed(seed)
    set_dropout(module, config.dropout)
    module.to(device).train()
    dataset = LabelledPhotos(loaders, labels, augmented=config.augmentation, seed=seed)
    batches = DataLoader(
        dataset,
        batch_size=min(config.batch_size, len(labels)),
        sampler=class_balanced_sampler(labels, seed),
        drop_last=len(labels) > config.batch_size,
    )
    optimizer = _optimizer(config.optimizer, module.parameters(), config.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    total_steps = config.epochs * len(batches)
    started = time.monotonic()
    log: list[dict[str, Any]] = []
    for epoch in range(1, config.epochs + 1):
        epoch_started, losses, correct, seen = now_utc(), [], 0, 0
        for batch_index, (inputs, targets) in enumerate(batches, start=1):
            if should_stop():
                raise TrainingCancelled
            inputs, targets = inputs.to(device), targets.to(device)
            optimizer.zero_grad()
            logits = first_output(module(inputs))
            loss = loss_fn(logits, targets)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} in epoch {epoch}")
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            correct += int((logits.argmax(dim=1) == targets).sum())
            seen += len(targets)
            done = (epoch - 1) * len(batches) + batch_index
            elapsed = time.monotonic() - started
            on_progress(
                Progress(
                    epoch=epoch,
                    epochs=config.epochs,
                    batch=batch_index,
                    batches=len(batches),
                    loss=float(np.mean(losses)),
                    fraction=done / total_steps,
                    eta_seconds=elapsed / done * (total_steps - done),
                )
            )
        finished = now_utc()
        log.append(
            {
                "epoch": epoch,
                "epoch_started_at": wire_time(epoch_started),
                "epoch_finished_at": wire_time(finished),
                "epoch_seconds": round((finished - epoch_started).total_seconds(), 3),
                "train_loss": float(np.mean(losses)),
                "train_accuracy": correct / max(1, seen),
                "learning_rate": config.learning_rate,
                "train_samples": seen,
            }
        )
    recalibrate_batch_norm(
        module, LabelledPhotos(loaders, labels, augmented=False, seed=seed), device
    )
    return log


def recalibrate_batch_norm(
    module: nn.Module, dataset: LabelledPhotos, device: str, batch_size: int = 16
) -> None:
    """Recompute BatchNorm's running statistics over the training photos with the final weights
    (an exact average, not the lagging moving average of training). With the few hundred
    photos of a clinic the moving averages trail the weights by several epochs, and the model
    behaves differently at inference than it did in training."""
    norms = [
        layer for layer in module.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm)
    ]
    if not norms:
        module.eval()
        return
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.reset_running_stats()
        layer.momentum = None
    module.train()
    with torch.no_grad():
        for inputs, _ in DataLoader(dataset, batch_size=batch_size):
            if len(inputs) > 1:
                module(inputs.to(device))
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    module.eval()
