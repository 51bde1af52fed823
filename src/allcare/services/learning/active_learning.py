"""POST /active-learning/candidates: the cases an expert should label next (contract 2.13).

Computed from what inference stored with each photo (probabilities and embedding), never by
running the model again. A case's photos are the ones stored with it; a case without any (only
gallery photos kept on the device, D14) is scored by the predictions saved with its decision.
Doctors and admins rank every GP's cases; a GP only their own.

The app sorts the answer by ``margin`` and shows the first five, so ``margin`` carries the
selection order: the prediction margin itself for the default strategy (kept non-decreasing
where the melanoma safeguard moves a case forward); the true value is in ``prediction_margin``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from allcare.ml.active_learning import STRATEGIES, Pool, Selection
from allcare.ml.active_learning import select as select_cases
from allcare.ml.classes import CLASS_NAMES, NUM_CLASSES
from allcare.services.cases.listing import open_document
from allcare.services.cases.records import CaseState
from allcare.services.labels.pool import Split, split_for
from allcare.services.learning.candidate_query import (
    CandidateQuery,
    Candidates,
    NoCandidates,
)
from allcare.services.learning.opened_probabilities import OpenedProbabilities
from allcare.services.learning.ranked_cases import EVALUATION_SAMPLE, CandidateAnswers, interleave
from allcare.services.principal import Principal
from allcare.store import vectors
from allcare.store.contexts import embedding_context
from allcare.store.crypto import Sealer, is_sealed
from allcare.store.db import fetch_rows
from allcare.store.models import Case, Image

METHODS = {
    "margin": ("minimum_margin_case_sampling", "minimum prediction margins across all images"),
    "entropy": ("maximum_entropy_case_sampling", "maximum predictive entropy across all images"),
    "least_confidence": (
        "least_confidence_case_sampling",
        "lowest top-class confidence across all images",
    ),
    "diversity": (
        "diverse_minimum_margin_case_sampling",
        "k-center greedy diversity among the cases with the smallest margins",
    ),
    "random": ("random_case_sampling", "uniform random choice (baseline)"),
}
_PACKED_F32 = 3 + 4 * NUM_CLASSES


def _random_rank(case_id: int) -> bytes:
    return hashlib.sha256(f"allcare-evaluation-order:{case_id}".encode()).digest()


class ActiveLearningService:
    def __init__(
        self, session: Session, sealer: Sealer, opened: OpenedProbabilities | None = None
    ) -> None:
        self.session = session
        self._sealer = sealer
        self._opened = opened or OpenedProbabilities()
        self._answers = CandidateAnswers(session, sealer)

    def candidates(self, principal: Principal, query: CandidateQuery) -> Candidates | NoCandidates:
        scope = select(Case.id).where(Case.state == CaseState.DECIDED)
        if not principal.sees_all_cases:
            scope = scope.where(Case.owner_id == principal.user_id)
        filtered = self._filtered(scope, query)
        # DBAPI rows, not ORM objects: ranking 100,000 cases must stay under a second.
        oldest_first = fetch_rows(
            self.session,
            filtered.with_only_columns(Case.id, Case.split_key, Case.eval_split).order_by(
                Case.decided_at, Case.id
            ),
        )
        if not oldest_first:
            return self._empty(scope)
        ranked_rows, evaluation_ids = self._sides(oldest_first, query)
        in_decision_order = np.fromiter((row[0] for row in ranked_rows), dtype=np.int64)
        by_id = np.argsort(in_decision_order, kind="stable")
        case_ids = in_decision_order[by_id]
        age = by_id.astype(np.float64)
        pool = self._pool(filtered, case_ids, age)
        strategy = STRATEGIES[query.strategy]()
        wanted = len(oldest_first) if query.top_k <= 0 else min(query.top_k, len(oldest_first))
        evaluation_ids = evaluation_ids[: round(wanted * query.evaluation_share)]
        selection = select_cases(
            pool,
            strategy,
            max(0, wanted - len(evaluation_ids)) if pool.size else 0,
            mel_quota=query.mel_quota,
            mel_suspicion=query.mel_suspicion,
        )
        if not pool.size:
            selection = Selection(np.zeros(0, dtype=int), np.zeros(0, dtype=int))
        candidates = self._answers.candidates(case_ids, pool, selection, query.strategy)
        if len(evaluation_ids):
            chosen = np.sort(np.array(evaluation_ids, dtype=np.int64))
            sampled = self._pool(filtered, chosen, np.zeros(len(chosen)))
            order = np.array([int(np.searchsorted(chosen, i)) for i in evaluation_ids])
            picks = self._answers.candidates(
                chosen, sampled, Selection(order, np.zeros(0, dtype=int)), EVALUATION_SAMPLE
            )
            candidates = interleave(candidates, picks, query.strategy)
        method, how = METHODS[query.strategy]
        return Candidates(
            candidates=candidates,
            evaluation_share=query.evaluation_share,
            evaluation_candidates=len(evaluation_ids),
            selection_method=method,
            description=f"Top {len(candidates)} most uncertain cases based on {how}",
            strategy=query.strategy,
            pool_size=pool.size,
            mel_quota=query.mel_quota,
            mel_suspicion=query.mel_suspicion,
            safeguarded=len(selection.safeguarded),
        )

    def _sides(self, rows: list[Any], query: CandidateQuery) -> tuple[list[Any], list[int]]:
        """Training-side cases for the strategy to rank, and the held-out side's in a fixed
        random order (a hash of the case id: the same case stays proposed until labelled,
        independent of any model). Without an evaluation share every case is ranked."""
        if query.evaluation_share <= 0:
            return rows, []
        ranked: list[Any] = []
        held_out: list[Any] = []
        for row in rows:
            side = row[2] or split_for(row[1] or row[0], query.holdout_share)
            (held_out if side == Split.HOLDOUT else ranked).append(row)
        order = sorted(held_out, key=lambda row: _random_rank(row[0]))
        return ranked, [int(row[0]) for row in order]

    def _filtered(self, scope: Select[Any], query: CandidateQuery) -> Select[Any]:
        if not query.include_labeled:
            scope = scope.where(Case.current_label_id.is_(None))
        if query.entry_type:
            scope = scope.where(func.lower(Case.entry_type) == query.entry_type.lower())
        if query.status:
            scope = scope.where(func.lower(Case.status) == query.status.lower())
        return scope

    def _empty(self, scope: Select[Any]) -> NoCandidates:
        any_case = self.session.connection().execute(scope.limit(1)).first()
        return NoCandidates("No cases with images available" if any_case else "No cases available")

    # -- the pool ------------------------------------------------------------------------------

    def _pool(self, filtered: Select[Any], case_ids: np.ndarray, age: np.ndarray) -> Pool:
        photos = (
            filtered.with_only_columns(Image.case_id, Image.id, Image.probabilities)
            .select_from(Case)
            .join(Image, Image.case_id == Case.id)
            .where(Image.probabilities.is_not(None))
        )
        rows = fetch_rows(self.session, photos)
        if len(case_ids):
            found = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
            at = np.minimum(np.searchsorted(case_ids, found), len(case_ids) - 1)
            rows = [row for row, keep in zip(rows, case_ids[at] == found, strict=True) if keep]
        else:
            rows = []
        image_ids = [row[1] for row in rows]
        of_case = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        positions = np.searchsorted(case_ids, of_case)
        probabilities = self._probabilities(rows)
        missing = np.setdiff1d(np.arange(len(case_ids)), positions)
        if len(missing):
            extra_positions, extra = self._decision_predictions(case_ids[missing], missing)
            positions = np.concatenate([positions, extra_positions])
            probabilities = np.concatenate([probabilities, extra])
            image_ids += [""] * len(extra_positions)
        pool = Pool(
            size=len(case_ids),
            probabilities=probabilities,
            image_case=positions.astype(np.int64),
            age=age,
        )
        pool.embeddings = lambda chosen: self._embeddings(pool, image_ids, chosen)
        return pool

    def _probabilities(self, rows: list[Any]) -> np.ndarray:
        """All photos' probabilities in one array: opened one by one when sealed, then decoded
        together (every packed vector of seven float32 has the same 31 bytes)."""
        blobs = [row[2] for row in rows]
        if not blobs:
            return np.zeros((0, NUM_CLASSES))
        if any(map(is_sealed, blobs)):
            blobs = self._opened.open(self._sealer, rows)
        if set(map(len, blobs)) == {_PACKED_F32}:
            raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), _PACKED_F32)
            if (raw[:, :3] == np.frombuffer(vectors.pack(np.zeros(0, "<f4")), np.uint8)).all():
                return raw[:, 3:].copy().view("<f4").astype(np.float64)
        return np.stack([vectors.unpack(blob) for blob in blobs]).astype(np.float64)

    def _decision_predictions(
        self, case_ids: np.ndarray, positions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cases without a stored photo: the predictions the GP saw when deciding."""
        found_positions, found = [], []
        by_id = dict(zip(case_ids.tolist(), positions.tolist(), strict=True))
        for case in self.session.scalars(select(Case).where(Case.id.in_(by_id))):
            vector = np.zeros(NUM_CLASSES)
            for item in open_document(self._sealer, case).get("predictions") or []:
                if item.get("label") in CLASS_NAMES:
                    vector[CLASS_NAMES.index(item["label"])] = float(item.get("confidence", 0))
            if np.count_nonzero(vector) >= 1:
                found_positions.append(by_id[case.id])
                found.append(vector)
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros((0, NUM_CLASSES))
        return np.array(found_positions, dtype=np.int64), np.stack(found)

    def _embeddings(self, pool: Pool, image_ids: list[str], chosen: np.ndarray) -> Any:
        """Each chosen case's embedding: that of its most uncertain photo; None unless every
        chosen case has one of the same size."""
        top2 = np.sort(pool.probabilities, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
        best: dict[int, int] = {}
        for row in np.argsort(margin, kind="stable"):
            best.setdefault(int(pool.image_case[row]), int(row))
        wanted = [image_ids[best[c]] if c in best else "" for c in chosen.tolist()]
        if not all(wanted):
            return None
        found = dict(
            self.session.execute(
                select(Image.id, Image.embedding).where(Image.id.in_(wanted))
            ).all()
        )
        rows = []
        for image_id in wanted:
            sealed = found.get(image_id)
            if sealed is None:
                return None
            rows.append(vectors.unpack(self._sealer.open(sealed, embedding_context(image_id))))
        if len({row.shape for row in rows}) != 1:
            return None
        return np.stack(rows)
