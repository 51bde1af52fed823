"""Field types shared by request schemas: bounded strings and lists (D8), ISO timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from allcare.ml.classes import CLASS_NAMES

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


def _iso_text(value: object) -> object:
    """Pydantic alone would also read ``0.0`` as epoch seconds, which the schema does not allow."""
    if isinstance(value, str):
        _iso_timestamp(value)
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_text)]


class Prediction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    confidence: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


def _model_class(label: str) -> str:
    if label not in CLASS_NAMES:
        raise ValueError(f"label must be a class of the model: {', '.join(CLASS_NAMES)}")
    return label


class PredictionIn(Prediction):
    """A prediction a client stores with a case: only what a model of this server can say
    (the legacy placeholder ``unavailable`` is no prediction, D18)."""

    label: Annotated[
        str, StringConstraints(min_length=1, max_length=64), AfterValidator(_model_class)
    ]


class ErrorOut(BaseModel):
    """Every refusal: ``detail`` says why (a list of field errors for 422)."""

    detail: str | list[Any] | dict[str, Any]


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request: a body that is not JSON, or a value the detail names",
    401: "Not authenticated, or the credentials (token, X-API-Key) are refused",
    403: "The caller's role or ownership does not allow this",
    404: "Unknown, or not the caller's",
    409: "Conflicts with the current state",
    413: "Body or image too large",
    415: "Not a photo this server reads (JPEG, PNG, WebP, HEIC)",
    429: "Too many requests; see Retry-After",
    503: "Temporarily unavailable (no model, overloaded, database down); see Retry-After",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers one operation can really give, for its OpenAPI entry (422, field
    errors, FastAPI adds wherever there is input)."""
    return {code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[code]} for code in codes}
