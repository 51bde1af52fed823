"""The evaluation set a training run is judged on, fixed and recorded when it is triggered.

Two sources. By default the clinic's own held-out cases: those whose split key fell on the
held-out side (labels/pool.split_for), labelled because the candidates list proposes a share
of randomly chosen held-out cases beside the uncertain ones (learning/active_learning.py), so
the set represents what GPs upload rather than what the model finds hard. Or a curated set an admin
registers (``allcare evaluation-set register``): a folder laid out like ham10000-dev, one split
of it, its ``lesion_id`` column grouping photos of one lesion.

The snapshot lists every evaluation case, its label row (clinic) or label (curated), its group
and its photos: an auditor can rebuild the comparison from the run's record alone.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allcare.core.clock import now_utc, wire_time
from allcare.ml.classes import CLASS_NAMES
from allcare.services.errors import InvalidInput
from allcare.services.events import EventType, record_event
from allcare.services.labels.fields import open_label
from allcare.services.labels.pool import Split
from allcare.store.crypto import Sealer
from allcare.store.db import begin_write
from allcare.store.models import AppSetting, Case, CaseLabel, Image

CURATED_KEY = "evaluation_set"
CLINIC = "clinic"
FOLDER = "folder"


@dataclass(frozen=True)
class EvalCase:
    """One evaluation case: its label, the unit it is resampled with, and how to read each of
    its photos."""

    case: str
    label: str
    group: str
    photos: tuple[Callable[[], bytes], ...]


def snapshot(session: Session) -> dict[str, Any]:
    """The set a run triggered now is judged on: the curated one when registered, else the
    clinic's labelled held-out cases with their photos."""
    curated = session.get(AppSetting, CURATED_KEY)
    if curated is not None:
        return dict(curated.value)
    rows = session.execute(
        select(Case.id, Case.current_label_id, Case.split_key, Image.id)
        .join(CaseLabel, CaseLabel.id == Case.current_label_id)
        .join(Image, Image.case_id == Case.id)
        .where(CaseLabel.trainable, Case.eval_split == Split.HOLDOUT)
        .order_by(Case.id, Image.created_at, Image.id)
    ).all()
    cases: dict[int, dict[str, Any]] = {}
    for case_id, label_id, key, image_id in rows:
        entry = cases.setdefault(
            case_id,
            {"case_id": case_id, "label_id": label_id, "group": key or str(case_id), "images": []},
        )
        entry["images"].append(image_id)
    return {"source": CLINIC, "cases": list(cases.values())}


@dataclass(frozen=True)
class EvalSetSummary:
    """What the trigger's event, a run's evaluation and the admin screen say about a snapshot."""

    source: str | None
    cases: int
    groups: int
    photos: int
    data_dir: str | None = None  # a curated set's folder and split; a clinic set has neither
    split: str | None = None

    def record(self) -> dict[str, object]:
        """As it is recorded and answered: the folder and split only for a curated set."""
        values = dataclasses.asdict(self)
        if self.split is None:
            del values["data_dir"], values["split"]
        return values


def summary(eval_set: dict[str, Any]) -> EvalSetSummary:
    cases = eval_set.get("cases") or []
    curated = "split" in eval_set
    return EvalSetSummary(
        source=eval_set.get("source"),
        cases=len(cases),
        groups=len({case["group"] for case in cases}),
        photos=sum(len(case["images"]) for case in cases),
        data_dir=eval_set["data_dir"] if curated else None,
        split=eval_set["split"] if curated else None,
    )


def open_cases(
    session: Session,
    sealer: Sealer,
    eval_set: dict[str, Any],
    read_blob: Callable[[str, str], bytes],
) -> list[EvalCase]:
    """The snapshot's cases with their labels: clinic labels are opened from the label rows the
    snapshot named (a newer label on the case does not change a run's set)."""
    entries = eval_set.get("cases") or []
    if eval_set.get("source") == FOLDER:
        return [
            EvalCase(
                case=str(entry["case_id"]),
                label=entry["label"],
                group=str(entry["group"]),
                photos=tuple(_file_reader(Path(path)) for path in entry["images"]),
            )
            for entry in entries
        ]
    label_rows = {
        row.id: row
        for row in session.scalars(
            select(CaseLabel).where(CaseLabel.id.in_([entry["label_id"] for entry in entries]))
        )
    }
    image_ids = [image_id for entry in entries for image_id in entry["images"]]
    blob_keys = dict(
        session.execute(select(Image.id, Image.blob_key).where(Image.id.in_(image_ids))).all()
    )
    opened = []
    for entry in entries:
        row = label_rows.get(entry["label_id"])
        photos = [image_id for image_id in entry["images"] if image_id in blob_keys]
        if row is None or not photos:
            continue
        opened.append(
            EvalCase(
                case=str(entry["case_id"]),
                label=open_label(sealer, row)["correct_label"],
                group=str(entry["group"]),
                photos=tuple(
                    _blob_reader(read_blob, blob_keys[image_id], image_id) for image_id in photos
                ),
            )
        )
    return opened


def _file_reader(path: Path) -> Callable[[], bytes]:
    return path.read_bytes


def _blob_reader(
    read_blob: Callable[[str, str], bytes], blob_key: str, image_id: str
) -> Callable[[], bytes]:
    return lambda: read_blob(blob_key, image_id)


# -- the curated set --------------------------------------------------------------------------


def read_curated(data_dir: Path, split: str) -> list[dict[str, Any]]:
    """One case per photo of ``split`` in ``data_dir/labels.csv``, grouped by ``lesion_id``."""
    labels_file = data_dir / "labels.csv"
    if not labels_file.is_file():
        raise InvalidInput(f"{labels_file} not found: the folder needs a labels.csv")
    cases = []
    with labels_file.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("split") != split or row.get("dx") not in CLASS_NAMES:
                continue
            path = (data_dir / "images" / f"{row['image_id']}.jpg").resolve()
            if not path.is_file():
                raise InvalidInput(f"{path} is missing: every photo of the set must be there")
            cases.append(
                {
                    "case_id": row["image_id"],
                    "label": row["dx"],
                    "group": row.get("lesion_id") or row["image_id"],
                    "images": [str(path)],
                }
            )
    if not cases:
        raise InvalidInput(f"{labels_file} has no photos of split {split!r} with a known class")
    return cases


def register_curated(session: Session, data_dir: Path, split: str, actor_id: str) -> EvalSetSummary:
    cases = read_curated(data_dir, split)
    value = {
        "source": FOLDER,
        "data_dir": str(data_dir.resolve()),
        "split": split,
        "registered_by": actor_id,
        "registered_at": wire_time(now_utc()),
        "cases": cases,
    }
    begin_write(session)
    stored = session.get(AppSetting, CURATED_KEY, with_for_update=True)
    if stored is None:
        session.add(AppSetting(key=CURATED_KEY, value=value, updated_by=actor_id))
    else:
        stored.value, stored.updated_by, stored.updated_at = value, actor_id, now_utc()
    described = summary(value)
    record_event(
        session,
        EventType.CONFIG_UPDATED,
        f"Evaluation set registered by {actor_id}: {described.cases} photos of "
        f"{described.groups} lesions, split {split!r} of {value['data_dir']}",
        actor_id=actor_id,
        evaluation_set=described.record(),
    )
    session.commit()
    return described


def clear_curated(session: Session, actor_id: str) -> bool:
    begin_write(session)
    stored = session.get(AppSetting, CURATED_KEY, with_for_update=True)
    if stored is None:
        return False
    session.delete(stored)
    record_event(
        session,
        EventType.CONFIG_UPDATED,
        f"Evaluation set cleared by {actor_id}: runs are judged on the clinic's held-out cases",
        actor_id=actor_id,
    )
    session.commit()
    return True
