"""Answers of the /admin learning routes and the legacy /model routes (contract 2.15-2.18,
2.28-2.33). Field order is the wire's; recorded JSON (configurations, evaluation summaries,
event metadata) stays an object."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from allcare.services.learning.outcomes import RunSkipped, RunStarted, SkipReason
from allcare.services.learning.status import Idle, NotStarted, Promoting, RunStatus, Training

Ok = Literal["ok"]


class _FromAttributes(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TrainingConfigOut(BaseModel):
    status: Ok = "ok"
    config: dict[str, Any]
    defaults: dict[str, Any]


class TrainingConfigSetOut(BaseModel):
    status: Ok = "ok"
    message: str = "Training configuration updated"
    config: dict[str, Any]


class RunStartedOut(_FromAttributes):
    status: Ok = "ok"
    success: Literal[True] = True
    message: str = "Retraining started in the background"
    version_id: str
    architecture: str
    base_model: str
    new_samples: int
    labels_used: int
    samples_used: int
    evaluation_set: dict[str, Any]


class AlreadyRunningOut(BaseModel):
    status: Literal["skipped"] = "skipped"
    success: Literal[False] = False
    reason: str
    message: str
    version_id: str


class BelowThresholdOut(BaseModel):
    status: Literal["skipped"] = "skipped"
    success: Literal[False] = False
    reason: str = SkipReason.BELOW_THRESHOLD.value
    current_labels: int
    threshold: int
    message: str = "Use force=true to override"


TriggerOut = RunStartedOut | AlreadyRunningOut | BelowThresholdOut


def trigger_out(result: RunStarted | RunSkipped) -> TriggerOut:
    if isinstance(result, RunStarted):
        return RunStartedOut(
            version_id=result.version_id,
            architecture=result.architecture,
            base_model=result.base_model,
            new_samples=result.new_samples,
            labels_used=result.labels_used,
            samples_used=result.samples_used,
            evaluation_set=result.evaluation_set.record(),
        )
    if result.why is SkipReason.ALREADY_RUNNING:
        return AlreadyRunningOut(
            reason=result.reason, message=result.reason, version_id=result.version_id or ""
        )
    return BelowThresholdOut(current_labels=result.current_labels, threshold=result.threshold)


class CancelOut(BaseModel):
    status: Ok = "ok"
    message: str
    version_id: str

    @classmethod
    def of(cls, version_id: str) -> CancelOut:
        return cls(
            message=f"Cancellation of {version_id} requested; it stops after the current batch",
            version_id=version_id,
        )


class TrainingOut(_FromAttributes):
    status: Literal["training"] = "training"
    version_id: str
    started_at: str | None
    architecture: str | None
    phase: str | None
    epoch: int | float | None
    epochs: int | float | None
    fraction: float | int | None
    loss: float | int | None
    eta_seconds: float | int | None
    cancel_requested: bool


class PromotingOut(_FromAttributes):
    status: Literal["training"] = "training"
    version_id: str
    started_at: str | None
    architecture: str | None
    phase: Literal["promoting"] = "promoting"
    fraction: float = 1.0


class NotStartedOut(BaseModel):
    status: Literal["not_started"] = "not_started"
    last_retrain: None = None


class IdleOut(_FromAttributes):
    status: Literal["idle"] = "idle"
    last_retrain: str | None
    last_version: str
    last_accuracy: float | int | None
    last_outcome: str
    last_error: str | None


RunStatusOut = TrainingOut | PromotingOut | NotStartedOut | IdleOut


def run_status_out(status: RunStatus) -> RunStatusOut:
    if isinstance(status, Training):
        return TrainingOut.model_validate(status)
    if isinstance(status, Promoting):
        return PromotingOut.model_validate(status)
    if isinstance(status, NotStarted):
        return NotStartedOut()
    assert isinstance(status, Idle)
    return IdleOut.model_validate(status)


class ThresholdOut(BaseModel):
    should_retrain: bool
    current_labels: int
    required: int


class RetrainStatusOut(BaseModel):
    status: Ok = "ok"
    retrain_status: RunStatusOut
    threshold: ThresholdOut
    automatic_retraining: bool
    last_automatic_error: str | None


class ArchitectureOut(_FromAttributes):
    id: str
    label: str
    available: bool
    reason: str | None


class ArchitecturesOut(_FromAttributes):
    status: Ok = "ok"
    default_architecture: str
    architectures: list[ArchitectureOut]


class EventOut(_FromAttributes):
    timestamp: str | None
    type: str
    message: str
    actor: str | None
    metadata: dict[str, Any] | None


class EventsOut(BaseModel):
    status: Ok = "ok"
    events: list[EventOut]
    total: int


class LabelCountOut(_FromAttributes):
    status: Ok = "ok"
    total_labels: int
    unused_labels: int
    used_labels: int
    held_out_labels: int
    unknown_labels: int
    retrain_threshold: int
    ready_for_retrain: bool


class PoolEntryOut(_FromAttributes):
    case_id: str
    case_owner: str
    correct_label: str
    user_id: str
    source: str
    split: str | None
    created_at: str | None
    updated_at: str | None
    used_in_models: list[str]


class LabelsOut(BaseModel):
    status: Ok = "ok"
    labels: list[PoolEntryOut]
    total: int


class LegacyStartedOut(BaseModel):
    status: Literal["retraining_started"] = "retraining_started"
    message: str = "Model retraining has been started in the background"
    current: int
    architecture: str
    version_id: str


class LegacyBelowThresholdOut(BaseModel):
    status: Literal["skipped"] = "skipped"
    reason: Literal["insufficient_rejected_labels"] = "insufficient_rejected_labels"
    required: int
    current: int


LegacyRetrainOut = LegacyStartedOut | LegacyBelowThresholdOut | AlreadyRunningOut


def legacy_retrain_out(result: RunStarted | RunSkipped) -> LegacyRetrainOut:
    """The legacy route's shapes (contract 2.16) for the same run."""
    if isinstance(result, RunStarted):
        return LegacyStartedOut(
            current=result.new_samples,
            architecture=result.architecture,
            version_id=result.version_id,
        )
    if result.why is SkipReason.BELOW_THRESHOLD:
        return LegacyBelowThresholdOut(required=result.threshold, current=result.current_labels)
    out = trigger_out(result)
    assert isinstance(out, AlreadyRunningOut)
    return out
