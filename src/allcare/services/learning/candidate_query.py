"""The candidates ranking's question and its answer (POST /active-learning/candidates)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from allcare.ml.active_learning import StrategyName


@dataclass(frozen=True)
class Candidates:
    """``candidates`` are case records (services/cases/records.py) with their ranking."""

    candidates: list[dict[str, Any]]
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
