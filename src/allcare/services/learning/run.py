"""One background training run, from its label snapshot to a judged candidate.

Run by the training worker process (cli/training_worker.py), which the supervisor
(learning/supervisor.py) starts. It reports progress and a heartbeat to the database, stops
when asked, saves the candidate through learning/candidate.py, evaluates candidate and
production on the same held-out photos, and records the gate's verdict. Whatever happens, it
leaves the run either judged or failed with the reason.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from allcare.core.config import Settings
from allcare.ml.architectures import early_layers
from allcare.ml.classes import CLASS_NAMES
from allcare.ml.loading import LoadedModel, load_model
from allcare.ml.model_file import read_model
from allcare.ml.photo import decode_photo
from allcare.ml.training import TrainingCancelled, fine_tune
from allcare.ml.training_config import TrainingConfig
from allcare.services.cases.images import IMAGE_NAMESPACE
from allcare.services.events import EventType
from allcare.services.labels.pool import LabelledImage, Split, labelled_images
from allcare.services.learning.calibration import calibrate_on, split_for_calibration
from allcare.services.learning.candidate import (
    Event,
    Outcome,
    SavedCandidate,
    record_candidate,
    save_candidate,
    training_device,
)
from allcare.services.learning.evaluation import Judgement, gate_policy, judge
from allcare.services.learning.evaluation_set import EvalCase, open_cases, summary
from allcare.services.learning.gate import Verdict
from allcare.services.learning.progress import RunProgress
from allcare.services.learning.replay import founding_of, replay_samples
from allcare.services.learning.status import fail_run
from allcare.services.models.options import model_options
from allcare.services.models.registry import (
    Pointer,
    Status,
    get_version,
    model_file,
    pointer,
)
from allcare.store.blobs import BlobStore
from allcare.store.crypto import Sealer
from allcare.store.db import Database, begin_write
from allcare.store.models import ModelVersion, TrainingLabel

log = logging.getLogger("allcare.training_worker")


class TrainingRun:
    def __init__(
        self, settings: Settings, db: Database, sealer: Sealer, blobs: BlobStore, version_id: str
    ) -> None:
        self.settings = settings
        self.db = db
        self.sealer = sealer
        self.blobs = blobs
        self.version_id = version_id
        self.progress = RunProgress(db, version_id)

    def execute(self) -> int:
        try:
            self._run()
        except TrainingCancelled:
            self._fail(f"cancelled by {self.progress.cancelled_by()}", cancelled=True)
            return 0
        except Exception as exc:
            log.exception("Training %s failed", self.version_id)
            self._fail(f"{type(exc).__name__}: {exc}")
            return 1
        return 0

    # -- the run -------------------------------------------------------------------------------

    def _run(self) -> None:
        with self.db.session() as session:
            begin_write(session)
            version = get_version(session, self.version_id, lock=True)
            if version.status != Status.TRAINING:
                raise RuntimeError(f"{self.version_id} is {version.status}, not training")
            version.worker_pid = os.getpid()
            version.worker_host = socket.gethostname()
            session.commit()
            label_ids = list(
                session.scalars(
                    select(TrainingLabel.label_id).where(
                        TrainingLabel.version_id == self.version_id
                    )
                )
            )
            train = labelled_images(session, self.sealer, label_ids, split=Split.TRAIN)
            eval_set = version.eval_set or {}
            eval_cases = open_cases(session, self.sealer, eval_set, self._read_blob)
            base = get_version(session, version.base_version or "")
            base_path = model_file(self.settings, base)
            founding = founding_of(session, base)
            architecture = version.architecture or ""
            config = TrainingConfig.from_wire(version.training_config or {})
        self.progress.report({"phase": "loading", "fraction": 0.0})
        _, module = read_model(base_path, trust_pickle=self.settings.model_trust_pickle)
        split = split_for_calibration(train, self.settings.retrain_calibration_share, self._seed())
        train = split.train
        replay = replay_samples(
            founding, len(train), self.settings.retrain_replay_share, self._seed()
        )
        started = time.monotonic()
        log_rows = fine_tune(
            module,
            [self._loader(sample) for sample in train]
            + [_file_loader(sample.path) for sample in replay.samples],
            [CLASS_NAMES.index(sample.label) for sample in train]
            + [sample.label for sample in replay.samples],
            config,
            device=training_device(self.settings),
            seed=self._seed(),
            # Production learnt its BatchNorm statistics (and, when pretrained, its early
            # filters) on far more photos than a clinic's labels: they stay.
            frozen=early_layers(module),
            freeze_batch_norm=True,
            on_progress=self.progress.training,
            should_stop=self.progress.should_stop,
        )
        training_seconds = time.monotonic() - started
        self.progress.report({"phase": "calibrating", "fraction": 1.0}, force=True)
        calibration = calibrate_on(module.to("cpu"), split.calibration, self._loader)
        self.progress.report({"phase": "saving", "fraction": 1.0}, force=True)
        saved = save_candidate(self.settings, self.version_id, module, architecture)
        self.progress.report({"phase": "evaluating"}, force=True)
        judged = self._judge(saved.model, eval_cases)
        judged.evaluation["evaluation_set"] = summary(eval_set).record()
        last = log_rows[-1] if log_rows else {}
        metrics = {
            "val_accuracy": judged.candidate.get("accuracy"),
            "balanced_accuracy": judged.candidate.get("balanced_accuracy"),
            "mel_recall": judged.candidate.get("mel_recall"),
            "ece": judged.candidate.get("ece"),
            "eval_cases": judged.candidate["n"],
            "eval_images": sum(len(case.photos) for case in eval_cases),
            "train_accuracy": last.get("train_accuracy"),
            "train_loss": last.get("train_loss"),
            "samples_used": len(train),
            "replay_samples": len(replay.samples),
            "replay_source": replay.source,
            "replay_note": replay.note,
            "labels_used": len({sample.label_id for sample in train}),
            "new_samples_used": len({sample.label_id for sample in train}),
            "steps": sum(row.get("steps", 0) for row in log_rows),
            "epochs_completed": len(log_rows),
            "training_seconds": round(training_seconds, 1),
            "calibration": calibration,
            "seconds_per_epoch": round(training_seconds / max(1, len(log_rows)), 1),
        }
        self._record_outcome(
            saved=saved,
            metrics=metrics,
            log_rows=log_rows,
            evaluation=judged.evaluation,
            verdict=judged.decision.verdict,
            reasons=judged.decision.reasons,
        )

    def _seed(self) -> int:
        return int.from_bytes(self.version_id.encode()[-4:], "big")

    def _judge(self, candidate: LoadedModel, eval_cases: list[EvalCase]) -> Judgement:
        with self.db.session() as session:
            production_id = pointer(session, Pointer.PRODUCTION)
            production = session.get(ModelVersion, production_id) if production_id else None
            production_path = model_file(self.settings, production) if production else None
        current = None
        if production_path is not None:
            current = load_model(production_path, model_options(self.settings), production_id)
        return judge(
            candidate, current, production_id, eval_cases, gate_policy(self.settings), self._seed()
        )

    def _record_outcome(
        self,
        *,
        saved: SavedCandidate,
        metrics: dict[str, Any],
        log_rows: list[dict[str, Any]],
        evaluation: dict[str, Any],
        verdict: Verdict,
        reasons: list[str],
    ) -> None:
        completed = Event(
            EventType.TRAINING_COMPLETED,
            f"Training {self.version_id} completed on {metrics['labels_used']} labels: "
            f"balanced accuracy {_three(metrics['balanced_accuracy'])} on "
            f"{metrics['eval_cases']} evaluation cases; gate: {verdict.value}",
            {
                "accuracy": metrics["val_accuracy"],
                "samples_used": metrics["samples_used"],
                "metrics": metrics,
                "verdict": verdict.value,
                "reasons": reasons,
                "comparison": evaluation["comparison"],
            },
        )
        rejected = Event(
            EventType.CANDIDATE_REJECTED,
            f"Candidate {self.version_id} rejected: {'; '.join(reasons)}",
            {
                "reasons": reasons,
                "candidate": evaluation["candidate"],
                "production": evaluation["production"],
            },
        )
        is_rejected = verdict == Verdict.REJECT
        outcome = Outcome(
            metrics=metrics,
            training_log=log_rows,
            evaluation=evaluation,
            rejected=is_rejected,
            completed=completed,
            also=(rejected,) if is_rejected else (),
        )
        record_candidate(self.db, self.version_id, saved, outcome)

    # -- helpers -------------------------------------------------------------------------------

    def _read_blob(self, blob_key: str, image_id: str) -> bytes:
        return self.blobs.read(blob_key, IMAGE_NAMESPACE, image_id)

    def _photo(self, sample: LabelledImage) -> bytes:
        return self._read_blob(sample.blob_key, sample.image_id)

    def _loader(self, sample: LabelledImage) -> Callable[[], Any]:
        return lambda: decode_photo(self._photo(sample))

    def _fail(self, reason: str, *, cancelled: bool = False) -> None:
        fail_run(self.db, self.version_id, reason, cancelled=cancelled)


def _file_loader(path: Path) -> Callable[[], Any]:
    return lambda: decode_photo(path.read_bytes())


def _three(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
