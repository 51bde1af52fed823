"""Field types shared by request schemas: bounded strings and lists (D8), ISO timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

ShortText = Annotated[str, StringConstraints(max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=10_000)]
PathText = Annotated[str, StringConstraints(max_length=1024)]
IdText = Annotated[str, StringConstraints(max_length=64)]
StatusText = Annotated[str, StringConstraints(max_length=64)]


def _iso_timestamp(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("must be an ISO-8601 timestamp, e.g. 2026-02-15T13:12:33.943") from exc
    return value


IsoTimestamp = Annotated[str, StringConstraints(max_length=64), AfterValidator(_iso_timestamp)]


class Prediction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    confidence: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class StatusOut(BaseModel):
    status: str
