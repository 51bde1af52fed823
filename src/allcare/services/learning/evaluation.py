"""Judging a candidate: both models on the run's evaluation cases, a paired bootstrap over
lesion groups, then the promotion gate (services/learning/gate.py). Every number and interval
goes into the run's record."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from allcare.core.config import Settings
from allcare.ml.classes import CLASS_NAMES, NUM_CLASSES
from allcare.ml.evaluation import evaluate
from allcare.ml.loading import LoadedModel, predict
from allcare.ml.paired_bootstrap import PairedComparison, compare, metric_interval
from allcare.ml.photo import model_input_of
from allcare.services.learning.evaluation_set import EvalCase
from allcare.services.learning.gate import Decision, GatePolicy, Verdict, decide

EVAL_CHUNK = 128


def gate_policy(settings: Settings) -> GatePolicy:
    return GatePolicy(
        min_eval_cases=settings.promotion_min_eval_cases,
        min_improvement=settings.promotion_min_improvement,
        max_ece_increase=settings.promotion_max_ece_increase,
        min_melanomas=settings.promotion_min_eval_melanomas,
        mel_margin=settings.promotion_mel_margin,
    )


@dataclass(frozen=True)
class Judgement:
    candidate: dict[str, Any]
    evaluation: dict[str, Any]
    decision: Decision


def case_probabilities(models: list[LoadedModel], cases: list[EvalCase]) -> list[np.ndarray]:
    """Each model's probabilities per case (the mean over its photos), photos decoded once and
    scored in chunks so a 1,500-photo set never sits in memory as tensors."""
    scored: list[list[np.ndarray]] = [[] for _ in models]
    for start in range(0, len(cases), EVAL_CHUNK):
        chunk = cases[start : start + EVAL_CHUNK]
        inputs = [model_input_of(read()) for case in chunk for read in case.photos]
        owner = np.repeat(np.arange(len(chunk)), [len(case.photos) for case in chunk])
        for index, model in enumerate(models):
            photos = predict(model, inputs)
            sums = np.zeros((len(chunk), NUM_CLASSES))
            np.add.at(sums, owner, photos)
            scored[index].append(sums / np.bincount(owner, minlength=len(chunk))[:, None])
    return [np.concatenate(rows) if rows else np.zeros((0, NUM_CLASSES)) for rows in scored]


def reported_metrics(
    labels: np.ndarray, probabilities: np.ndarray, groups: np.ndarray, seed: int
) -> dict[str, Any]:
    """The metrics the registry shows, with 95 % bootstrap intervals."""
    metrics = evaluate(probabilities, labels)
    if len(labels):
        intervals = metric_interval(labels, probabilities, groups, seed=seed)
        metrics["intervals"] = {name: value.as_dict() for name, value in intervals.items()}
    return metrics


def comparison_record(comparison: PairedComparison | None) -> dict[str, Any] | None:
    if comparison is None:
        return None
    return {
        "balanced_accuracy_gain": comparison.balanced_accuracy_gain.as_dict(),
        "mel_recall_change": comparison.mel_recall_change.as_dict(),
        "ece_change": comparison.ece_change.as_dict(),
        "cases": comparison.cases,
        "groups": comparison.groups,
        "melanomas": comparison.melanomas,
        "bootstrap_rounds": comparison.rounds,
        "seed": comparison.seed,
        "level": 0.95,
    }


def policy_record(policy: GatePolicy) -> dict[str, Any]:
    return asdict(policy)


def judge(
    candidate: LoadedModel,
    current: LoadedModel | None,
    production_id: str | None,
    eval_cases: list[EvalCase],
    policy: GatePolicy,
    seed: int,
) -> Judgement:
    """Candidate and production on the same cases (a case's photos averaged), compared with a
    paired bootstrap over lesion groups, then the gate's rules."""
    models = [candidate] if current is None else [candidate, current]
    scored = case_probabilities(models, eval_cases)
    labels = np.array([CLASS_NAMES.index(case.label) for case in eval_cases], dtype=int)
    groups = np.array([case.group for case in eval_cases])
    candidate_metrics = reported_metrics(labels, scored[0], groups, seed)
    production_metrics = None
    comparison = None
    if current is not None and len(labels):
        production_metrics = reported_metrics(labels, scored[1], groups, seed)
        comparison = compare(labels, scored[0], scored[1], groups, seed=seed)
    if current is not None and not len(labels):
        decision = Decision(
            Verdict.HOLD,
            [f"the evaluation set has 0 cases; automatic promotion needs {policy.min_eval_cases}"],
        )
    else:
        decision = decide(comparison, policy)
    evaluation = {
        "production_version": production_id,
        "candidate": candidate_metrics,
        "production": production_metrics,
        "comparison": comparison_record(comparison),
        "policy": policy_record(policy),
        "verdict": decision.verdict.value,
        "reasons": decision.reasons,
        "eval_cases": len(labels),
        "eval_images": sum(len(case.photos) for case in eval_cases),
    }
    return Judgement(candidate_metrics, evaluation, decision)
