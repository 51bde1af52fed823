"""Expert labels as the app reads them on case records, and how a label row is sealed.

The newest label of a case decides ``correct_label``; the annotation fields come from its newest
annotation, as the legacy record kept them after a later plain label.
"""

from __future__ import annotations

import json
from collections import defaultdict
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allcare.core.clock import wire_time
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


def wire_fields(row: CaseLabel, details: dict[str, Any]) -> dict[str, Any]:
    """The legacy record fields one label row sets."""
    if row.source == LabelSource.ANNOTATION:
        fields = {
            "correct_label": details["correct_label"],
            "annotations": details.get("annotations"),
            "annotated_by": row.labeller_id,
            "annotated_at": details.get("annotated_at") or wire_time(row.created_at),
            "annotation_image_index": details.get("image_index"),
        }
        if details.get("notes"):
            fields["annotation_notes"] = details["notes"]
        return fields
    return {
        "correct_label": details["correct_label"],
        "labeled_by": row.labeller_id,
        "labeled_at": wire_time(row.created_at),
        "label_notes": details.get("notes"),
    }


def label_fields(
    session: Session, sealer: Sealer, case_ids: list[int]
) -> dict[int, dict[str, Any]]:
    """Per case, the record fields of all its labels folded oldest to newest."""
    folded: dict[int, dict[str, Any]] = defaultdict(dict)
    if not case_ids:
        return folded
    rows = session.scalars(
        select(CaseLabel).where(CaseLabel.case_id.in_(case_ids)).order_by(CaseLabel.id)
    )
    for row in rows:
        folded[row.case_id].update(wire_fields(row, open_label(sealer, row)))
    return folded
