"""The photos of ``allcare migrate``: checked, stored again in the blob store (sealed when
encryption is on) under their old ids, so the ``image_paths`` the app holds keep working."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from allcare.core.clock import now_utc
from allcare.ml.classes import CLASS_NAMES
from allcare.ml.photo import image_size
from allcare.services.cases.images import IMAGE_FILE_PATTERN, IMAGE_NAMESPACE
from allcare.services.migration.legacy_reader import Problem, Record
from allcare.services.migration.report import ALREADY
from allcare.services.migration.steps import MigrationSteps, legacy_time
from allcare.store import vectors
from allcare.store.contexts import probabilities_context
from allcare.store.models import Image


def import_photo(steps: MigrationSteps, session: Session, case_id: int, record: Record) -> None:
    """One photo of a case; one already here (an interrupted run) is counted, not copied."""
    image_id = str(record.data.get("image_id") or "").lower()
    if not IMAGE_FILE_PATTERN.fullmatch(f"{image_id}.jpg"):
        steps.report.problem("images", f"{record.where}: image id {image_id!r} is not a UUID4")
        return
    if session.get(Image, image_id) is not None:
        steps.report.count("images", ALREADY)
        return
    found = steps.tree.photo(record.owner, image_id)
    if isinstance(found, Problem):
        steps.report.problem("images", f"{record.where}: {found}")
        return
    data, _ = found
    size = image_size(data)
    if size is None:
        steps.report.problem("images", f"{record.where}: photo {image_id} is not an image")
        return
    width, height = size
    steps.begin(session)
    key = steps.blobs.key_for(IMAGE_NAMESPACE, image_id, ".jpg")
    sha256, key_id = "", None
    if not steps.dry_run:
        steps.blobs.intend(session, key)
        session.commit()
        blob = steps.blobs.write(key, IMAGE_NAMESPACE, image_id, data)
        sha256, key_id = blob.sha256, blob.key_id
        steps.begin(session)
    probabilities = _probabilities(record.data.get("predictions"))
    session.add(
        Image(
            id=image_id,
            owner_id=record.owner,
            case_id=case_id,
            blob_key=key,
            sha256=sha256,
            size_bytes=len(data),
            content_type="image/jpeg",
            key_id=key_id,
            width=width,
            height=height,
            blur_score=_number(record.data.get("blur_score")),
            probabilities=None
            if probabilities is None
            else steps.sealer.seal(vectors.pack(probabilities), probabilities_context(image_id)),
            model_version="legacy",
            created_at=legacy_time(record.data.get("created_at")) or now_utc(),
        )
    )
    if not steps.dry_run:
        steps.blobs.settle(session, key)
    steps.mark(session, "image", image_id, image_id)
    steps.commit(session)
    steps.report.count("images")


def _probabilities(predictions: Any) -> np.ndarray | None:
    """The old ``[{label, confidence}]`` list as a vector in class order (others ignored)."""
    if not isinstance(predictions, list):
        return None
    vector = np.zeros(len(CLASS_NAMES), dtype=np.float32)
    for item in predictions:
        if isinstance(item, dict) and item.get("label") in CLASS_NAMES:
            value = _number(item.get("confidence"))
            if value is not None:
                vector[CLASS_NAMES.index(item["label"])] = value
    return vector if vector.any() else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None
