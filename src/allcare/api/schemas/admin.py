"""Admin request bodies (contract 2.18-2.33); responses are the registry's own records."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    field_validator,
)

from allcare.ml.classes import ARCHITECTURES, architecture_id
from allcare.ml.training_config import Optimizer

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class TrainingConfigIn(BaseModel):
    """Ranges as the app validates its model card; the architecture must be servable (D17)."""

    model_config = ConfigDict(extra="ignore")

    # Strict: the app sends JSON numbers and booleans; true is not an epoch count.
    epochs: StrictInt | None = Field(None, ge=1, le=100)
    batch_size: StrictInt | None = Field(None, ge=1, le=128)
    learning_rate: StrictFloat | None = Field(None, ge=1e-6, le=1.0, allow_inf_nan=False)
    optimizer: Optimizer | None = None
    dropout: StrictFloat | None = Field(None, ge=0.0, le=0.9, allow_inf_nan=False)
    augmentation_applied: StrictBool | None = None
    # Additive: the fewest optimiser steps of a run (RETRAIN_MIN_STEPS by default).
    min_steps: StrictInt | None = Field(None, ge=0, le=1_000_000)
    # Additive: melanoma's loss weight, the other classes' being 1 (RETRAIN_MELANOMA_WEIGHT).
    melanoma_weight: StrictFloat | None = Field(None, ge=1.0, le=10.0, allow_inf_nan=False)
    architecture: str | None = Field(None, max_length=40)

    @field_validator("architecture")
    @classmethod
    def _servable(cls, value: str | None) -> str | None:
        """The trigger's vocabulary (ids and legacy aliases), stored as the id."""
        if value is None:
            return None
        known = architecture_id(value)
        if known is None:
            raise ValueError(f"architecture must be one of: {', '.join(ARCHITECTURES)}")
        return known


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reason: Reason


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reason: Reason = "Manual rollback"


class AssetActivateIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file_name: Annotated[str, StringConstraints(min_length=1, max_length=255)]


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    architecture: Annotated[str, StringConstraints(max_length=40)] | None = None
    force: StrictBool = False  # the app sends a JSON boolean; 0 or "yes" is a 422
