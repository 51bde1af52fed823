"""A first model for a clinic without one: train on a folder of labelled photos, evaluate on its
held-out split, register the result (``allcare train``).

The folder is laid out like ham10000-dev: ``labels.csv`` with the columns ``image_id``, ``dx``
(one of the seven class codes) and ``split`` (``train``/``val``/``test``; lesion-disjoint
splits keep the evaluation honest), optionally ``mini`` (1 marks a small balanced subset), and
the photos as ``images/<image_id>.jpg``.
"""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from allcare.core.clock import now_utc
from allcare.core.config import Settings
from allcare.ml.architectures import build, early_layers
from allcare.ml.classes import CLASS_NAMES, PRETRAINED
from allcare.ml.evaluation import evaluate
from allcare.ml.loading import predict
from allcare.ml.model_file import read_model
from allcare.ml.photo import decode_photo, model_input_of
from allcare.ml.training import Progress, fine_tune
from allcare.ml.training_config import TrainingConfig
from allcare.services.errors import InvalidInput
from allcare.services.events import EventType
from allcare.services.learning.candidate import (
    Event,
    Outcome,
    record_candidate,
    save_candidate,
    training_device,
)
from allcare.services.learning.status import fail_run
from allcare.services.models.registry import Source, Status, new_version_id
from allcare.store.db import Database, begin_write
from allcare.store.models import ModelVersion

FOUNDING = "founding"


@dataclass(frozen=True)
class FirstModel:
    """The registered version, its metrics as recorded, and the held-out evaluation."""

    version_id: str
    metrics: dict[str, Any]
    evaluation: dict[str, Any]


@dataclass(frozen=True)
class FolderSample:
    path: Path
    label: int


@dataclass(frozen=True)
class FolderRun:
    data_dir: Path
    architecture: str
    config: TrainingConfig
    eval_split: str = "val"
    mini: bool = False
    limit: int | None = None
    start_from: Path | None = None
    pretrained: bool = True
    seed: int = 0


def read_folder(
    data_dir: Path, eval_split: str, *, mini: bool = False, limit: int | None = None, seed: int = 0
) -> tuple[list[FolderSample], list[FolderSample]]:
    """The folder's ``train`` photos and those of ``eval_split``."""
    labels_file = data_dir / "labels.csv"
    if not labels_file.is_file():
        raise InvalidInput(f"{labels_file} not found: the folder needs a labels.csv")
    train: list[FolderSample] = []
    held_out: list[FolderSample] = []
    with labels_file.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if mini and row.get("mini") != "1":
                continue
            if row.get("dx") not in CLASS_NAMES:
                continue
            sample = FolderSample(
                data_dir / "images" / f"{row['image_id']}.jpg", CLASS_NAMES.index(row["dx"])
            )
            if row.get("split") == "train":
                train.append(sample)
            elif row.get("split") == eval_split:
                held_out.append(sample)
    if limit:
        train = stratified_sample(train, limit, seed)
        held_out = stratified_sample(held_out, limit, seed)
    if len(train) < 2 or not held_out:
        raise InvalidInput(
            f"{labels_file}: {len(train)} training and {len(held_out)} '{eval_split}' "
            "photos; need at least 2 and 1"
        )
    missing = [s.path for s in train + held_out if not s.path.is_file()]
    if missing:
        raise InvalidInput(f"{len(missing)} photos are missing, e.g. {missing[0]}")
    return train, held_out


def stratified_sample(samples: list[FolderSample], limit: int, seed: int) -> list[FolderSample]:
    """``limit`` photos drawn at random (seeded) with every class in its share, at least one
    of each class present: the file's first rows are often one class (sorted exports)."""
    if len(samples) <= limit:
        return samples
    rng = random.Random(seed)  # noqa: S311 - sampling, not security
    by_class: dict[int, list[FolderSample]] = {}
    for sample in samples:
        by_class.setdefault(sample.label, []).append(sample)
    chosen: list[FolderSample] = []
    for members in by_class.values():
        share = max(1, round(limit * len(members) / len(samples)))
        chosen.extend(rng.sample(members, min(share, len(members))))
    rng.shuffle(chosen)
    order = {id(sample): index for index, sample in enumerate(samples)}
    return sorted(chosen[:limit], key=lambda sample: order[id(sample)])


def _open_photo(path: Path) -> Any:
    return decode_photo(path.read_bytes())


def train_from_folder(
    settings: Settings,
    db: Database,
    run: FolderRun,
    actor: str,
    on_progress: Callable[[Progress], None],
) -> FirstModel:
    """Train, save as a new registry version (evaluating), prove it loads as serving loads it,
    evaluate it on the folder's held-out split. Returns the version's record."""
    if run.start_from is None and run.pretrained and run.architecture not in PRETRAINED:
        raise InvalidInput(
            f"No pretrained weights for {run.architecture} (pretrained: {', '.join(PRETRAINED)});"
            " train it from random weights (--init random) or choose efficientnet_lite0"
        )
    train, held_out = read_folder(
        run.data_dir, run.eval_split, mini=run.mini, limit=run.limit, seed=run.seed
    )
    if run.start_from is not None:
        _, module = read_model(run.start_from, trust_pickle=settings.model_trust_pickle)
    else:
        module = build(run.architecture, pretrained=run.pretrained, seed=run.seed)
    # Pretrained early filters already know edges and textures: they stay as ImageNet left them.
    frozen = early_layers(module) if run.start_from is None and run.pretrained else []
    started = time.monotonic()
    log = fine_tune(
        module,
        [partial(_open_photo, s.path) for s in train],
        [s.label for s in train],
        run.config,
        device=training_device(settings),
        seed=run.seed,
        frozen=frozen,
        on_progress=on_progress,
    )
    seconds = time.monotonic() - started
    with db.session() as session:
        begin_write(session)
        version_id = new_version_id(session)
        session.add(
            ModelVersion(
                id=version_id,
                status=Status.TRAINING.value,
                source=Source.COMMAND.value,
                source_name=str(run.data_dir),
                architecture=run.architecture,
                training_config=run.config.to_wire()
                | {"start": _start_of(run), "seed": run.seed, FOUNDING: _founding(run)},
                triggered_by=actor,
                started_at=now_utc(),
            )
        )
        session.commit()
    try:
        saved = save_candidate(settings, version_id, module, run.architecture)
        inputs = [model_input_of(s.path.read_bytes()) for s in held_out]
        result = evaluate(predict(saved.model, inputs), np.array([s.label for s in held_out]))
        metrics = {
            "val_accuracy": result["accuracy"],
            "balanced_accuracy": result["balanced_accuracy"],
            "mel_recall": result["mel_recall"],
            "ece": result["ece"],
            "eval_images": result["n"],
            "train_accuracy": log[-1]["train_accuracy"],
            "train_loss": log[-1]["train_loss"],
            "samples_used": len(train),
            "epochs_completed": len(log),
            "training_seconds": round(seconds, 1),
            "seconds_per_epoch": round(seconds / max(1, len(log)), 1),
        }
        completed = Event(
            EventType.TRAINING_COMPLETED,
            f"{actor} trained {version_id} ({run.architecture}) on {len(train)} photos of "
            f"{run.data_dir}: accuracy {result['accuracy']:.3f}, balanced accuracy "
            f"{result['balanced_accuracy']:.3f} on {result['n']} '{run.eval_split}' photos",
            {
                "actor_id": actor,
                "accuracy": result["accuracy"],
                "samples_used": len(train),
                "metrics": metrics,
            },
        )
        evaluation = {
            "dataset": str(run.data_dir),
            "split": run.eval_split,
            "candidate": result,
            "verdict": "hold",
            "reasons": ["trained from a folder; an admin decides"],
            "eval_images": result["n"],
        }
        outcome = Outcome(metrics, log, evaluation, rejected=False, completed=completed)
        record_candidate(db, version_id, saved, outcome)
    except BaseException as exc:
        # Whatever stopped it (a file that does not load, an interrupt), the run never stays
        # "training": that would block automatic retraining until a restart failed it.
        fail_run(db, version_id, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        raise
    return FirstModel(version_id, metrics, result)


def _founding(run: FolderRun) -> dict[str, Any]:
    """What replay (services/learning/replay.py) needs to draw these photos again."""
    return {
        "data_dir": str(run.data_dir.resolve()),
        "eval_split": run.eval_split,
        "mini": run.mini,
        "limit": run.limit,
        "seed": run.seed,
    }


def _start_of(run: FolderRun) -> str:
    if run.start_from is not None:
        return str(run.start_from)
    return "imagenet" if run.pretrained else "random"
