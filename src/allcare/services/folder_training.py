"""A first model for a clinic without one: train on a folder of labelled photos, evaluate on its
held-out split, register the result (``allcare train``).

The folder is laid out like ham10000-dev: ``labels.csv`` with the columns ``image_id``, ``dx``
(one of the seven class codes) and ``split`` (``train``/``val``/``test``; lesion-disjoint
splits keep the evaluation honest), optionally ``mini`` (1 marks a small balanced subset), and
the photos as ``images/<image_id>.jpg``.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from allcare.core.clock import now_utc
from allcare.core.config import Settings
from allcare.ml.architectures import build
from allcare.ml.classes import CLASS_NAMES
from allcare.ml.evaluation import evaluate
from allcare.ml.loading import load_model, predict
from allcare.ml.model_file import checkpoint, read_model
from allcare.ml.photo import decode_photo, model_input_of
from allcare.ml.torch_runtime import resolve_torch_device
from allcare.ml.training import Progress, TrainingConfig, fine_tune
from allcare.runtime import model_options
from allcare.services.errors import InvalidInput
from allcare.services.events import EventType, record_event
from allcare.services.registry import Source, Status, new_version_id, write_model_file
from allcare.services.training_status import fail_run
from allcare.store.db import Database, begin_write
from allcare.store.models import ModelVersion


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
    seed: int = 0


def read_folder(run: FolderRun) -> tuple[list[FolderSample], list[FolderSample]]:
    labels_file = run.data_dir / "labels.csv"
    if not labels_file.is_file():
        raise InvalidInput(f"{labels_file} not found: the folder needs a labels.csv")
    train: list[FolderSample] = []
    held_out: list[FolderSample] = []
    with labels_file.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if run.mini and row.get("mini") != "1":
                continue
            if row.get("dx") not in CLASS_NAMES:
                continue
            sample = FolderSample(
                run.data_dir / "images" / f"{row['image_id']}.jpg", CLASS_NAMES.index(row["dx"])
            )
            if row.get("split") == "train":
                train.append(sample)
            elif row.get("split") == run.eval_split:
                held_out.append(sample)
    if run.limit:
        train, held_out = train[: run.limit], held_out[: run.limit]
    if len(train) < 2 or not held_out:
        raise InvalidInput(
            f"{labels_file}: {len(train)} training and {len(held_out)} '{run.eval_split}' "
            "photos; need at least 2 and 1"
        )
    missing = [s.path for s in train + held_out if not s.path.is_file()]
    if missing:
        raise InvalidInput(f"{len(missing)} photos are missing, e.g. {missing[0]}")
    return train, held_out


def train_from_folder(
    settings: Settings,
    db: Database,
    run: FolderRun,
    actor: str,
    on_progress: Callable[[Progress], None],
) -> dict[str, Any]:
    """Train, save as a new registry version (evaluating), prove it loads as serving loads it,
    evaluate it on the folder's held-out split. Returns the version's record."""
    train, held_out = read_folder(run)
    torch.manual_seed(run.seed)
    if run.start_from is not None:
        _, module = read_model(run.start_from, trust_pickle=settings.model_trust_pickle)
    else:
        module = build(run.architecture)
    started = time.monotonic()
    log = fine_tune(
        module,
        [lambda path=s.path: decode_photo(path.read_bytes()) for s in train],
        [s.label for s in train],
        run.config,
        device=resolve_torch_device(settings.retrain_device, "RETRAIN_DEVICE"),
        seed=run.seed,
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
                training_config=_wire_config(run.config),
                triggered_by=actor,
                started_at=now_utc(),
            )
        )
        session.commit()
    try:
        file_key, sha256, size = write_model_file(
            settings,
            version_id,
            "model.pt",
            lambda temp: torch.save(checkpoint(module, run.architecture, version_id), temp),
        )
        loaded = load_model(settings.models_dir / file_key, model_options(settings), version_id)
        inputs = [model_input_of(s.path.read_bytes()) for s in held_out]
        result = evaluate(predict(loaded, inputs), np.array([s.label for s in held_out]))
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
        with db.session() as session:
            begin_write(session)
            version = session.get(ModelVersion, version_id, with_for_update=True)
            assert version is not None
            version.file_key, version.sha256, version.size_bytes = file_key, sha256, size
            version.status = Status.EVALUATING.value
            version.metrics = metrics
            version.training_log = log
            version.evaluation = {
                "dataset": str(run.data_dir),
                "split": run.eval_split,
                "candidate": result,
                "verdict": "hold",
                "reasons": ["trained from a folder; an admin decides"],
                "eval_images": result["n"],
            }
            version.finished_at = now_utc()
            record_event(
                session,
                EventType.TRAINING_COMPLETED,
                f"{actor} trained {version_id} ({run.architecture}) on {len(train)} photos of "
                f"{run.data_dir}: accuracy {result['accuracy']:.3f}, balanced accuracy "
                f"{result['balanced_accuracy']:.3f} on {result['n']} '{run.eval_split}' photos",
                actor_id=actor,
                version_id=version_id,
                accuracy=result["accuracy"],
                samples_used=len(train),
                metrics=metrics,
            )
            session.commit()
    except BaseException as exc:
        # Whatever stopped it (a file that does not load, an interrupt), the run never stays
        # "training": that would block automatic retraining until a restart failed it.
        fail_run(db, version_id, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        raise
    return {"version_id": version_id, "metrics": metrics, "evaluation": result}


def _wire_config(config: TrainingConfig) -> dict[str, Any]:
    return {
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "optimizer": config.optimizer,
        "dropout": config.dropout,
        "augmentation_applied": config.augmentation,
    }
