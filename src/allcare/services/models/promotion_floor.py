"""The floor under a promotion by hand: a version whose held-out numbers are weak needs a
deliberate ``--force`` and a reason, so a 0.31-balanced-accuracy model never reaches patients
by a forgotten flag. The automatic gate (promotion_gate.py) has its own, stricter rules."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from allcare.core.config import Settings
from allcare.services.errors import NotFound
from allcare.store.models import ModelVersion


@dataclass(frozen=True)
class HeldOut:
    """A version's held-out numbers as its training run recorded them (None: not recorded)."""

    version_id: str
    balanced_accuracy: float | None
    mel_recall: float | None
    cases: int | None

    def describe(self) -> str:
        def number(value: float | None) -> str:
            return "not recorded" if value is None else f"{value:.3f}"

        on = f" on {self.cases} held-out cases" if self.cases else ""
        return (
            f"balanced accuracy {number(self.balanced_accuracy)}, melanoma sensitivity "
            f"{number(self.mel_recall)}{on}"
        )


@dataclass(frozen=True)
class FloorCheck:
    held_out: HeldOut
    shortfalls: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.shortfalls


def check(session: Session, settings: Settings, version_id: str) -> FloorCheck:
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"Model {version_id} not found")
    metrics = version.metrics or {}
    held_out = HeldOut(
        version_id,
        _number(metrics.get("balanced_accuracy")),
        _number(metrics.get("mel_recall")),
        metrics.get("eval_cases") or metrics.get("eval_images"),
    )
    shortfalls = []
    floors = (
        (
            "balanced accuracy",
            held_out.balanced_accuracy,
            settings.promotion_floor_balanced_accuracy,
        ),
        ("melanoma sensitivity", held_out.mel_recall, settings.promotion_floor_mel_recall),
    )
    for name, value, floor in floors:
        if value is None and floor > 0:
            shortfalls.append(f"no held-out {name} recorded (floor {floor:.2f})")
        elif value is not None and value < floor:
            shortfalls.append(f"{name} {value:.3f} is below the floor {floor:.2f}")
    return FloorCheck(held_out, tuple(shortfalls))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
