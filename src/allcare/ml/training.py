"""Fine-tuning a classifier on labelled photos: class-balanced sampling, light augmentation, and
the serving transform (ml/preprocess.py) on every sample, so training sees what inference sees.

No database and no files here: the caller hands over image loaders and labels, and gets the
trained module (in place) and one log row per epoch.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from allcare.core.clock import now_utc, wire_time
from allcare.ml.classes import CLASS_NAMES, NUM_CLASSES
from allcare.ml.preprocess import to_model_input
from allcare.ml.torch_runtime import first_output
from allcare.ml.training_config import OPTIMIZERS, TrainingConfig


class TrainingCancelled(Exception):
    """The run was asked to stop; nothing it produced may be used."""


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


def class_balanced_sampler(
    labels: Sequence[int], seed: int, num_samples: int
) -> WeightedRandomSampler:
    """Every class is drawn equally often, however rare (melanoma is ~11 % of HAM10000)."""
    counts = np.bincount(np.asarray(labels), minlength=NUM_CLASSES)
    weights = [1.0 / counts[label] for label in labels]
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(weights, num_samples=num_samples, generator=generator)


def class_weights(melanoma_weight: float) -> torch.Tensor:
    """Loss weights per class: 1 for each, ``melanoma_weight`` for melanoma."""
    weights = torch.ones(NUM_CLASSES)
    weights[CLASS_NAMES.index("mel")] = melanoma_weight
    return weights


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


def training_threads(configured: int) -> int:
    """TRAINING_THREADS, or one core fewer than this process may use: serving keeps a core,
    whether the run is the worker's or ``allcare train``'s."""
    if configured:
        return configured
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) - 1)


def use_training_threads(configured: int) -> int:
    """Give this process's torch the training threads (``training_threads``); returns them."""
    threads = training_threads(configured)
    torch.set_num_threads(threads)
    return threads


def _learning_rate_schedule(total_steps: int) -> Callable[[int], float]:
    """A short linear warm-up (5 % of the steps), then cosine decay to zero: large early steps
    on a pretrained model would wreck what it knows."""
    warmup = max(1, total_steps // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _ema_step(
    averaged: torch.Tensor, current: torch.Tensor, count: torch.Tensor | int
) -> torch.Tensor:
    """One step of the weights' moving average, with timm ModelEmaV3's warm-up: the new
    weights' share (1 + step) ** -0.75 shrinks as the run goes, so the start's random head soon
    fades and the average spans about the last 217 of 1,314 steps (the last 19 of 50).
    Integer buffers (BatchNorm's batch counter) take the current value."""
    if not averaged.is_floating_point():
        return current
    weight = (1.0 + float(count)) ** -0.75
    return averaged + (current - averaged) * weight


def _hold_still(layers: Sequence[nn.Module], module: nn.Module, batch_norm: bool) -> None:
    """Frozen layers, and with ``batch_norm`` every BatchNorm layer, run in inference mode so
    their running statistics stay what they were (module.train() resets that each epoch)."""
    for layer in layers:
        layer.eval()
    if batch_norm:
        for layer in module.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.eval()


def fine_tune(
    module: nn.Module,
    loaders: Sequence[ImageLoader],
    labels: Sequence[int],
    config: TrainingConfig,
    *,
    device: str = "cpu",
    seed: int = 0,
    frozen: Sequence[nn.Module] = (),
    freeze_batch_norm: bool = False,
    on_progress: Callable[[Progress], None] = lambda _: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[dict[str, Any]]:
    """Train ``module`` in place; one log row per epoch (the legacy training_log.json rows).

    An epoch draws ``len(labels)`` photos class-balanced, but never fewer than
    ``config.min_steps`` steps are taken in all: a clinic's 100 labels get enough optimisation
    to move the model, not one step per epoch. ``frozen`` layers keep their weights and
    statistics; ``freeze_batch_norm`` keeps every BatchNorm's statistics (a retraining run on a
    few hundred photos must not replace those learnt on the founding set). With ``config.ema``
    the module ends with the moving average of its weights and BatchNorm statistics."""
    if len(labels) < 2:
        raise ValueError(f"Training needs at least 2 labelled images, got {len(labels)}")
    torch.manual_seed(seed)
    set_dropout(module, config.dropout)
    module.to(device)
    for layer in frozen:
        layer.requires_grad_(False)
    batch_size = config.batch_size
    steps_per_epoch = max(
        math.ceil(len(labels) / batch_size), math.ceil(config.min_steps / config.epochs)
    )
    dataset = LabelledPhotos(loaders, labels, augmented=config.augmentation, seed=seed)
    batches = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=class_balanced_sampler(labels, seed, steps_per_epoch * batch_size),
    )
    trainable = [parameter for parameter in module.parameters() if parameter.requires_grad]
    optimizer = _optimizer(config.optimizer, trainable, config.learning_rate)
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _learning_rate_schedule(total_steps))
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(config.melanoma_weight).to(device))
    average = AveragedModel(module, avg_fn=_ema_step, use_buffers=True) if config.ema else None
    started = time.monotonic()
    log: list[dict[str, Any]] = []
    for epoch in range(1, config.epochs + 1):
        module.train()
        _hold_still(frozen, module, freeze_batch_norm)
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
            scheduler.step()
            if average is not None:
                average.update_parameters(module)
            losses.append(loss.item())
            correct += int((logits.argmax(dim=1) == targets).sum())
            seen += len(targets)
            done = (epoch - 1) * steps_per_epoch + batch_index
            elapsed = time.monotonic() - started
            on_progress(
                Progress(
                    epoch=epoch,
                    epochs=config.epochs,
                    batch=batch_index,
                    batches=steps_per_epoch,
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
                "steps": steps_per_epoch,
            }
        )
    if average is not None:
        module.load_state_dict(average.module.state_dict())
    module.eval()
    return log
