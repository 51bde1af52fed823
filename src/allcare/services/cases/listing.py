"""Logged cases as the app reads them back: the server's fields, the document the app stored
(opened), the expert labels and the photos stored with each case."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from allcare.services.labels.fields import LabelEntry, label_entries
from allcare.store.contexts import case_context
from allcare.store.crypto import Sealer
from allcare.store.models import Case, Image


@dataclass(frozen=True)
class CaseRecord:
    """A logged case. ``document`` is what the app stored with its decisions and edits, opened
    and kept as sent (records migrated from the legacy server hold fields of their own);
    ``labels`` are its expert labels, oldest first."""

    case_id: int
    owner_id: str
    owner_role: str | None
    status: str | None
    entry_type: str | None
    document: Mapping[str, Any]
    labels: tuple[LabelEntry, ...]
    image_ids: tuple[str, ...]
    decided_at: datetime | None
    updated_at: datetime | None


def seal_document(sealer: Sealer, case_id: int, fields: Mapping[str, Any]) -> bytes:
    return sealer.seal(json.dumps(fields).encode(), case_context(case_id))


def open_document(sealer: Sealer, case: Case) -> dict[str, Any]:
    if not case.details:
        return {}
    return json.loads(sealer.open(case.details, case_context(case.id)))


def read_records(session: Session, sealer: Sealer, cases: list[Case]) -> list[CaseRecord]:
    """The cases with their photos and expert labels, in the given order."""
    ids = [c.id for c in cases]
    image_ids = _image_ids(session, ids)
    labels = label_entries(session, sealer, ids)
    return [
        CaseRecord(
            case_id=case.id,
            owner_id=case.owner_id,
            owner_role=case.owner_role,
            status=case.status,
            entry_type=case.entry_type,
            document=open_document(sealer, case),
            labels=tuple(labels.get(case.id, [])),
            image_ids=tuple(image_ids.get(case.id, [])),
            decided_at=case.decided_at,
            updated_at=case.updated_at,
        )
        for case in cases
    ]


def _image_ids(session: Session, case_ids: list[int]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = defaultdict(list)
    if not case_ids:
        return grouped
    rows = session.execute(
        select(Image.case_id, Image.id)
        .where(Image.case_id.in_(case_ids))
        .order_by(Image.created_at, Image.id)
    )
    for case_id, image_id in rows:
        assert case_id is not None, "only photos of these cases were asked for"
        grouped[case_id].append(image_id)
    return grouped
