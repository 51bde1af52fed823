"""When a freshly trained candidate may replace the production model without an admin.

Both models are scored on the same evaluation cases, fixed when the run was triggered, and
compared with a paired bootstrap (ml/paired_bootstrap.py). Three rules, each on an interval:

* balanced accuracy: the 95 % interval of the gain lies above ``min_improvement``;
* melanoma sensitivity (at the server's operating point, the top class): non-inferior, the
  interval of the change lies above ``-mel_margin``, and the set holds at least
  ``min_melanomas`` melanoma cases (otherwise the rule cannot be measured);
* calibration: the interval of the ECE change lies below ``ece_margin``.

The verdict: **promote** when all three hold; **reject** when the candidate is clearly worse
on a rule (its interval lies wholly on the losing side) or worse on every rule that can be
measured; **hold** otherwise (no production model, too few cases, too few melanomas, or a gain
too noisy to tell), for an admin to decide. Sizes count cases, never photos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from allcare.ml.paired_bootstrap import Interval, PairedComparison


class Verdict(StrEnum):
    PROMOTE = "promote"
    REJECT = "reject"
    HOLD = "hold"


@dataclass(frozen=True)
class GatePolicy:
    min_eval_cases: int
    min_improvement: float
    max_ece_increase: float
    min_melanomas: int = 10
    mel_margin: float = 0.05


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Rule:
    passed: bool
    worse: bool  # the point estimate is on the losing side
    clearly_worse: bool  # the whole interval is
    reason: str


def _bounds(interval: Interval) -> tuple[float, float, float]:
    assert interval.estimate is not None
    assert interval.low is not None
    assert interval.high is not None
    return interval.estimate, interval.low, interval.high


def _balanced_accuracy(comparison: PairedComparison, policy: GatePolicy) -> _Rule:
    gain, low, high = _bounds(comparison.balanced_accuracy_gain)
    return _Rule(
        passed=low > policy.min_improvement,
        worse=gain < 0,
        clearly_worse=high < 0,
        reason=f"balanced accuracy gain {gain:+.3f} (95% CI {low:+.3f} to {high:+.3f}) must "
        f"lie above {policy.min_improvement:+.3f}",
    )


def _melanoma(comparison: PairedComparison, policy: GatePolicy) -> _Rule | None:
    if comparison.melanomas < policy.min_melanomas or comparison.mel_recall_change.low is None:
        return None
    change, low, high = _bounds(comparison.mel_recall_change)
    return _Rule(
        passed=low >= -policy.mel_margin,
        worse=change < 0,
        clearly_worse=high < 0,
        reason=f"melanoma sensitivity change {change:+.3f} (95% CI {low:+.3f} to {high:+.3f}) "
        f"must stay above -{policy.mel_margin:.3f}",
    )


def _calibration(comparison: PairedComparison, policy: GatePolicy) -> _Rule:
    change, low, high = _bounds(comparison.ece_change)
    return _Rule(
        passed=high <= policy.max_ece_increase,
        worse=change > 0,
        clearly_worse=low > policy.max_ece_increase,
        reason=f"calibration (ECE) change {change:+.3f} (95% CI {low:+.3f} to {high:+.3f}) "
        f"must stay below {policy.max_ece_increase:+.3f}",
    )


def decide(comparison: PairedComparison | None, policy: GatePolicy) -> Decision:
    """``comparison`` is None when there is no production model to compare with."""
    if comparison is None:
        return Decision(Verdict.HOLD, ["no production model to compare with; an admin decides"])
    if comparison.cases < policy.min_eval_cases:
        return Decision(
            Verdict.HOLD,
            [
                f"the evaluation set has {comparison.cases} cases; automatic promotion needs "
                f"{policy.min_eval_cases}"
            ],
        )
    melanoma = _melanoma(comparison, policy)
    rules = [
        rule
        for rule in (
            _balanced_accuracy(comparison, policy),
            melanoma,
            _calibration(comparison, policy),
        )
        if rule is not None
    ]
    failed = [rule.reason for rule in rules if not rule.passed]
    if any(rule.clearly_worse for rule in rules) or all(rule.worse for rule in rules):
        return Decision(Verdict.REJECT, failed or [rule.reason for rule in rules])
    if melanoma is None:
        failed.append(
            f"the evaluation set has {comparison.melanomas} melanoma cases; checking melanoma "
            f"sensitivity needs {policy.min_melanomas}"
        )
    return Decision(Verdict.HOLD, failed) if failed else Decision(Verdict.PROMOTE)
