"""When a freshly trained candidate may replace the production model without an admin.

Both models are evaluated on the same frozen held-out set in the same run. The candidate is
promoted only when all hold: there is a production model to beat (the first model is never
promoted automatically), the set has enough images and at least one melanoma, balanced accuracy
is higher by the configured margin, melanoma recall is not lower, and calibration (ECE) is not
worse beyond the configured tolerance. A candidate that loses on a rule is rejected with its
reasons; one that cannot be judged (no production, too small a set) is held for an admin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    PROMOTE = "promote"
    REJECT = "reject"
    HOLD = "hold"


@dataclass(frozen=True)
class GatePolicy:
    min_eval_images: int
    min_improvement: float
    max_ece_increase: float


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)


def decide(
    candidate: dict[str, Any], production: dict[str, Any] | None, policy: GatePolicy
) -> Decision:
    if production is None:
        return Decision(Verdict.HOLD, ["no production model to compare with; an admin decides"])
    size = candidate.get("n", 0)
    if size < policy.min_eval_images:
        return Decision(
            Verdict.HOLD,
            [
                f"the evaluation set has {size} images; automatic promotion needs "
                f"{policy.min_eval_images}"
            ],
        )
    if candidate.get("mel_recall") is None:
        return Decision(
            Verdict.HOLD, ["no melanoma in the evaluation set: melanoma recall cannot be checked"]
        )
    reasons = []
    gain = candidate["balanced_accuracy"] - production["balanced_accuracy"]
    if gain < policy.min_improvement:
        reasons.append(
            f"balanced accuracy {candidate['balanced_accuracy']:.3f} vs production "
            f"{production['balanced_accuracy']:.3f}: gain {gain:+.3f} is below the required "
            f"{policy.min_improvement:+.3f}"
        )
    if candidate["mel_recall"] < production["mel_recall"]:
        reasons.append(
            f"melanoma recall drops from {production['mel_recall']:.3f} "
            f"to {candidate['mel_recall']:.3f}"
        )
    if candidate["ece"] > production["ece"] + policy.max_ece_increase:
        reasons.append(
            f"calibration is worse: ECE {candidate['ece']:.3f} vs production "
            f"{production['ece']:.3f}"
        )
    return Decision(Verdict.REJECT, reasons) if reasons else Decision(Verdict.PROMOTE)
