"""What asking for a retraining run gives: a run started, or why none was."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from allcare.services.learning.evaluation_set import EvalSetSummary


@dataclass(frozen=True)
class RunStarted:
    version_id: str
    architecture: str
    base_model: str
    new_samples: int
    labels_used: int
    samples_used: int
    evaluation_set: EvalSetSummary


class SkipReason(StrEnum):
    ALREADY_RUNNING = "Training already running"
    BELOW_THRESHOLD = "Below threshold"


@dataclass(frozen=True)
class RunSkipped:
    """A trigger that started nothing, and why."""

    why: SkipReason
    version_id: str | None = None  # the run already running
    current_labels: int = 0
    threshold: int = 0

    @property
    def reason(self) -> str:
        if self.why is SkipReason.ALREADY_RUNNING:
            return f"{self.why.value}: {self.version_id}"
        return self.why.value


Triggered = RunStarted | RunSkipped
