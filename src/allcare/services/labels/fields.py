"""Expert label rows opened for case records, and how a label row is sealed."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allcare.store.contexts import label_context
from allcare.store.crypto import Sealer
from allcare.store.models import CaseLabel


class LabelSource(StrEnum):
    LABEL = "label"
    ANNOTATION = "annotation"


def open_label(sealer: Sealer, row: CaseLabel) -> dict[str, Any]:
    return json.loads(sealer.open(row.details, label_context(row.case_id)))


def seal_label(sealer: Sealer, case_id: int, details: dict[str, Any]) -> bytes:
    return sealer.seal(json.dumps(details).encode(), label_context(case_id))


@dataclass(frozen=True)
class LabelEntry:
    """One label row of a case, opened: the API folds a case's entries, oldest to newest, into
    the legacy record's label fields."""

    source: LabelSource
    correct_label: str
    labeller_id: str
    created_at: datetime
    notes: str | None
    annotations: Mapping[str, Any] | None = None  # the app's drawing (annotations only)
    image_index: object = None  # the photo drawn on: an int from the app; any JSON from legacy
    annotated_at: str | None = None  # as the legacy server recorded it (migrated annotations)


def entry_of(row: CaseLabel, details: Mapping[str, Any]) -> LabelEntry:
    return LabelEntry(
        source=LabelSource(row.source),
        correct_label=details["correct_label"],
        labeller_id=row.labeller_id,
        created_at=row.created_at,
        notes=details.get("notes"),
        annotations=details.get("annotations"),
        image_index=details.get("image_index"),
        annotated_at=details.get("annotated_at"),
    )


def label_entries(
    session: Session, sealer: Sealer, case_ids: list[int]
) -> dict[int, list[LabelEntry]]:
    """Per case, its labels oldest first."""
    entries: dict[int, list[LabelEntry]] = defaultdict(list)
    if not case_ids:
        return entries
    rows = session.scalars(
        select(CaseLabel).where(CaseLabel.case_id.in_(case_ids)).order_by(CaseLabel.id)
    )
    for row in rows:
        entries[row.case_id].append(entry_of(row, open_label(sealer, row)))
    return entries
