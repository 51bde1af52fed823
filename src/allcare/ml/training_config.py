"""What one training run uses, without torch: the serving process reads and shows it.

``TrainingConfig`` is the one table of defaults: retraining takes its fields with the
RETRAIN_DEFAULT_* settings (services/learning/config.py), a first model takes ``FIRST_MODEL``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

Optimizer = Literal["Adam", "SGD", "AdamW", "RMSprop"]
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-4
    optimizer: str = "Adam"
    dropout: float = 0.3
    augmentation: bool = True
    min_steps: int = 0
    # The loss weight of a melanoma, the other classes' being 1: a missed melanoma costs more
    # than a false alarm, and the gate refuses a candidate that trades melanoma sensitivity away.
    melanoma_weight: float = 1.0
    # Keep an exponential moving average of the weights and return it: the last step's weights
    # are one noisy point of the descent, the average sits nearer the middle of where it ended.
    ema: bool = False

    def to_wire(self) -> dict[str, Any]:
        """As the registry records it and the admin screen reads it (contract 2.17)."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "optimizer": self.optimizer,
            "dropout": self.dropout,
            "augmentation_applied": self.augmentation,
            "min_steps": self.min_steps,
            "melanoma_weight": self.melanoma_weight,
            "ema": self.ema,
        }

    @classmethod
    def from_wire(cls, values: dict[str, Any]) -> TrainingConfig:
        return cls(
            epochs=int(values["epochs"]),
            batch_size=int(values["batch_size"]),
            learning_rate=float(values["learning_rate"]),
            optimizer=str(values["optimizer"]),
            dropout=float(values["dropout"]),
            augmentation=bool(values["augmentation_applied"]),
            min_steps=int(values.get("min_steps", 0)),
            melanoma_weight=float(values.get("melanoma_weight", 1.0)),
            ema=bool(values.get("ema", False)),
        )


# A first model (``allcare train``) learns every layer from ImageNet weights on thousands of
# photos: larger steps, AdamW and the moving average pay off (README, "The first model").
# Retraining fine-tunes production on a clinic's labels with the dataclass's gentler defaults
# and the RETRAIN_DEFAULT_* settings (services/learning/config.py).
FIRST_MODEL = TrainingConfig(
    epochs=6, batch_size=32, learning_rate=5e-4, optimizer="AdamW", ema=True
)
