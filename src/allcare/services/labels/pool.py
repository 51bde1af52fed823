"""The labelled cases as training and evaluation data: which labels are unused, which cases are
held out for evaluation, and the counts the admin screen shows.

One definition everywhere (D23): a label is *trainable* when it is one of the seven classes (not
``unknown``), is the newest label of its case, and its case is on the training side of the
frozen split. Every run trains on all trainable labels (issue 13); a label is *used* once a
model trained on it has reached production, so a failed, held or rejected run spends nothing.
A new label on the same case is a new, unused label. Held-out cases are never trained on.

The split is decided by the case's *split key*: its id, or a digest of the lesion id its record
carries, so all photos of one lesion sit on the same side.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.orm import Session

from allcare.core.clock import wire_time
from allcare.services.labels.fields import open_label
from allcare.store.crypto import Sealer
from allcare.store.models import (
    Case,
    CaseLabel,
    Image,
    ModelVersion,
    PointerChange,
    TrainingLabel,
)

FAILED = "failed"
PRODUCTION = "production"


class Split(StrEnum):
    TRAIN = "train"
    HOLDOUT = "holdout"


def split_key(case_id: int, lesion_id: str | None) -> str:
    """The case id, or for a case that names its lesion a digest of that id (the lesion id
    itself stays in the sealed record)."""
    if lesion_id:
        digest = hashlib.sha256(f"allcare-lesion:{lesion_id}".encode()).hexdigest()
        return f"lesion:{digest[:40]}"
    return str(case_id)


@functools.lru_cache(maxsize=1_000_000)
def split_for(key: int | str, holdout_share: float) -> Split:
    """Fixed by the split key alone, so the held-out set is the same on every machine, does not
    depend on which cases active learning proposes, and only grows as cases are labelled.
    Cached: the candidates list asks for every unlabelled case on each request (a hash each
    would add 0.2 s per 100,000 cases)."""
    digest = hashlib.sha256(f"allcare-eval-split:{key}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return Split.HOLDOUT if fraction < holdout_share else Split.TRAIN


def case_split(case: Case, holdout_share: float) -> Split:
    """A labelled case's frozen side, or the side an unlabelled one will take."""
    if case.eval_split:
        return Split(case.eval_split)
    return split_for(case.split_key or str(case.id), holdout_share)


def _used(label_id: Any) -> Any:
    """In a model that reached production."""
    return exists().where(
        TrainingLabel.label_id == label_id,
        PointerChange.version_id == TrainingLabel.version_id,
        PointerChange.name == PRODUCTION,
    )


def _training_side() -> Any:
    return and_(CaseLabel.trainable, Case.eval_split == Split.TRAIN)


def _labelled() -> Select[Case, CaseLabel]:
    return select(Case, CaseLabel).join(CaseLabel, CaseLabel.id == Case.current_label_id)


def training_label_ids(session: Session) -> list[int]:
    """Every trainable label on the training side: what a run trains on."""
    query = select(CaseLabel.id).join(Case, Case.current_label_id == CaseLabel.id)
    return list(session.scalars(query.where(_training_side()).order_by(CaseLabel.id)))


def unused_label_ids(session: Session, since: datetime | None = None) -> list[int]:
    query = select(CaseLabel.id).join(Case, Case.current_label_id == CaseLabel.id)
    query = query.where(_training_side(), ~_used(CaseLabel.id))
    if since is not None:
        query = query.where(CaseLabel.created_at >= since)
    return list(session.scalars(query.order_by(CaseLabel.id)))


@dataclass(frozen=True)
class LabelCounts:
    total_labels: int
    unused_labels: int
    used_labels: int
    held_out_labels: int
    unknown_labels: int
    retrain_threshold: int
    ready_for_retrain: bool


def counts(session: Session, threshold: int) -> LabelCounts:
    labelled = (
        select(func.count())
        .select_from(Case)
        .join(CaseLabel, CaseLabel.id == Case.current_label_id)
    )
    unused = session.scalar(labelled.where(_training_side(), ~_used(CaseLabel.id))) or 0
    return LabelCounts(
        total_labels=session.scalar(labelled) or 0,
        unused_labels=unused,
        used_labels=session.scalar(labelled.where(_training_side(), _used(CaseLabel.id))) or 0,
        held_out_labels=session.scalar(
            labelled.where(CaseLabel.trainable, Case.eval_split == Split.HOLDOUT)
        )
        or 0,
        unknown_labels=session.scalar(labelled.where(~CaseLabel.trainable)) or 0,
        retrain_threshold=threshold,
        ready_for_retrain=unused >= threshold,
    )


@dataclass(frozen=True)
class LabelledImage:
    """One training or evaluation sample: a stored photo and its case's label."""

    image_id: str
    blob_key: str
    case_id: int
    label_id: int
    label: str


def labelled_images(
    session: Session, sealer: Sealer, label_ids: list[int] | None = None, *, split: Split
) -> list[LabelledImage]:
    """The photos of labelled cases on one side of the split, trainable labels only; with
    ``label_ids``, only those labels (a training run's snapshot)."""
    query = (
        select(Image, CaseLabel)
        .join(Case, Case.id == Image.case_id)
        .join(CaseLabel, CaseLabel.id == Case.current_label_id)
        .where(CaseLabel.trainable, Case.eval_split == split)
        .order_by(Image.case_id, Image.created_at, Image.id)
    )
    if label_ids is not None:
        query = query.where(CaseLabel.id.in_(label_ids))
    samples = []
    for image, label in session.execute(query):
        samples.append(
            LabelledImage(
                image_id=image.id,
                blob_key=image.blob_key,
                case_id=label.case_id,
                label_id=label.id,
                label=open_label(sealer, label)["correct_label"],
            )
        )
    return samples


@dataclass(frozen=True)
class PoolEntry:
    case_id: str
    case_owner: str
    correct_label: str
    user_id: str
    source: str
    split: str | None
    created_at: str | None
    updated_at: str | None
    used_in_models: list[str]


def pool_entries(
    session: Session, sealer: Sealer, *, limit: int, unused_only: bool
) -> tuple[list[PoolEntry], int]:
    """Labelled cases in the legacy labels-pool shape, newest first, and their total."""
    query = _labelled()
    if unused_only:
        query = query.where(_training_side(), ~_used(CaseLabel.id))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(CaseLabel.id.desc()).limit(limit)).all()
    used_in = _versions_using(session, [label.id for _, label in rows])
    first_labelled = dict(
        session.execute(
            select(CaseLabel.case_id, func.min(CaseLabel.created_at))
            .where(CaseLabel.case_id.in_([case.id for case, _ in rows]))
            .group_by(CaseLabel.case_id)
        ).all()
    )
    entries = []
    for case, label in rows:
        details = open_label(sealer, label)
        entries.append(
            PoolEntry(
                case_id=str(case.id),
                case_owner=case.owner_id,
                correct_label=details["correct_label"],
                user_id=label.labeller_id,
                source=label.source,
                split=case.eval_split,
                created_at=wire_time(first_labelled.get(case.id)),
                updated_at=wire_time(label.created_at),
                used_in_models=used_in.get(label.id, []),
            )
        )
    return entries, total


def _versions_using(session: Session, label_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if not label_ids:
        return found
    rows = session.execute(
        select(TrainingLabel.label_id, TrainingLabel.version_id)
        .join(ModelVersion, ModelVersion.id == TrainingLabel.version_id)
        .where(TrainingLabel.label_id.in_(label_ids), ModelVersion.status != FAILED)
        .order_by(TrainingLabel.version_id)
    )
    for label_id, version_id in rows:
        found.setdefault(label_id, []).append(version_id)
    return found
