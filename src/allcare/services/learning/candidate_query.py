"""The candidates ranking's question and its answer (POST /active-learning/candidates)."""

from __future__ import annotations

from dataclasses import dataclass

from allcare.ml.active_learning import StrategyName
from allcare.services.cases.listing import CaseRecord
from allcare.services.cases.predictions import Prediction


@dataclass(frozen=True)
class CandidatePhoto:
    """A photo the case names, with what inference stored for it (when it is the case owner's
    stored photo and was classified)."""

    path: str
    image_id: str
    predictions: tuple[Prediction, ...] | None = None
    blur_score: float | None = None
    model_version: str | None = None


@dataclass(frozen=True)
class Candidate:
    """A case record with why and where it ranks. ``photos`` is None when the record names no
    server photo; ``margin`` carries the selection order (see active_learning.py)."""

    record: CaseRecord
    photos: tuple[CandidatePhoto, ...] | None
    margin: float
    prediction_margin: float
    uncertainty_score: float
    mel_probability: float
    selection_reason: str
    evaluation_case: bool


@dataclass(frozen=True)
class Candidates:
    candidates: list[Candidate]
    evaluation_share: float
    evaluation_candidates: int
    selection_method: str
    description: str
    strategy: str
    pool_size: int
    mel_quota: float
    mel_suspicion: float
    safeguarded: int


@dataclass(frozen=True)
class NoCandidates:
    message: str


@dataclass(frozen=True)
class CandidateQuery:
    top_k: int
    entry_type: str = ""
    status: str = ""
    include_labeled: bool = False
    strategy: StrategyName = StrategyName.MARGIN
    mel_quota: float = 0.2
    mel_suspicion: float = 0.3
    evaluation_share: float = 0.0
    holdout_share: float = 0.2
