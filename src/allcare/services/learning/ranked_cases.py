"""The review ranking's answer: the chosen cases as records, each with its photos' stored
predictions and why and where it ranks."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from allcare.ml.active_learning import Pool, Selection
from allcare.services.cases.listing import read_records
from allcare.services.cases.predictions import ranked
from allcare.services.learning.candidate_query import Candidate, CandidatePhoto
from allcare.store import vectors
from allcare.store.contexts import probabilities_context
from allcare.store.crypto import Sealer
from allcare.store.models import Case, Image

SERVER_PATH = re.compile(r"^([A-Za-z0-9_-]{1,64})/([0-9a-f-]{36})\.jpg$")
EVALUATION_SAMPLE = "evaluation_sample"


def interleave(ranked: list[Candidate], picks: list[Candidate], strategy: str) -> list[Candidate]:
    """Evaluation picks spread evenly through the list (the app shows the first five); the
    reported ``margin`` stays non-decreasing along the merged order."""
    merged = list(ranked)
    total = len(ranked) + len(picks)
    for index, pick in enumerate(picks):
        merged.insert(min(len(merged), int((index + 0.5) * total / len(picks))), pick)
    reported = 0.0
    ordered = []
    for rank, candidate in enumerate(merged):
        priority = candidate.prediction_margin if strategy == "margin" else rank / len(merged)
        reported = max(reported, priority)
        ordered.append(dataclasses.replace(candidate, margin=round(reported, 6)))
    return ordered


class CandidateAnswers:
    def __init__(self, session: Session, sealer: Sealer) -> None:
        self.session = session
        self._sealer = sealer

    def candidates(
        self, case_ids: np.ndarray, pool: Pool, selection: Selection, strategy: str
    ) -> list[Candidate]:
        order = [int(case_ids[i]) for i in selection.cases]
        if not order:
            return []
        cases = {c.id: c for c in self.session.scalars(select(Case).where(Case.id.in_(order)))}
        records = {
            r.case_id: r for r in read_records(self.session, self._sealer, list(cases.values()))
        }
        images = self._images(order)
        margins = pool.margins()
        melanoma = pool.melanoma()
        safeguarded = set(selection.safeguarded.tolist())
        reported = 0.0
        result = []
        for rank, position in enumerate(selection.cases.tolist()):
            record = records[int(case_ids[position])]
            true_margin = float(margins[position])
            priority = true_margin if strategy == "margin" else rank / len(order)
            reported = max(reported, priority)
            paths = [
                p for p in record.document.get("image_paths") or [] if SERVER_PATH.fullmatch(p)
            ]
            result.append(
                Candidate(
                    record=record,
                    photos=tuple(self._photo(path, images) for path in paths) if paths else None,
                    margin=round(reported, 6),
                    prediction_margin=round(true_margin, 6),
                    uncertainty_score=round(1.0 - true_margin, 6),
                    mel_probability=round(float(melanoma[position]), 6),
                    selection_reason=(
                        "melanoma_safeguard" if position in safeguarded else strategy
                    ),
                    evaluation_case=strategy == EVALUATION_SAMPLE,
                )
            )
        return result

    def _images(self, case_ids: list[int]) -> dict[str, Image]:
        return {
            image.id: image
            for image in self.session.scalars(select(Image).where(Image.case_id.in_(case_ids)))
        }

    def _photo(self, path: str, images: dict[str, Image]) -> CandidatePhoto:
        match = SERVER_PATH.fullmatch(path)
        assert match is not None
        image_id = match.group(2)
        image = images.get(image_id)
        if image is None or image.owner_id != match.group(1) or image.probabilities is None:
            return CandidatePhoto(path, image_id)
        opened = self._sealer.open(image.probabilities, probabilities_context(image.id))
        return CandidatePhoto(
            path,
            image_id,
            predictions=ranked(vectors.unpack(opened).tolist()),
            blur_score=image.blur_score,
            model_version=image.model_version,
        )
