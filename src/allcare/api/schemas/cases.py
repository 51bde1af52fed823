"""Case request and response bodies, field for field as the app sends and reads them."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field

from allcare.api.schemas.common import (
    IdText,
    IsoTimestamp,
    LongText,
    PathText,
    PredictionIn,
    ShortText,
    StatusText,
)
from allcare.core.clock import utc_time, wire_time
from allcare.services.cases.listing import CaseRecord
from allcare.services.cases.records import Released
from allcare.services.labels.fields import LabelEntry, LabelSource

ImageDecisions = Annotated[dict[IdText, ShortText], Field(max_length=64)]


class _CaseFields(BaseModel):
    """Unknown fields are dropped, as the legacy server did."""

    model_config = ConfigDict(extra="ignore")

    predictions: list[PredictionIn] = Field(default_factory=list, max_length=64)
    image_paths: list[PathText] = Field(default_factory=list, max_length=64)
    symptoms: list[LongText] = Field(default_factory=list, max_length=64)
    gender: ShortText | None = None
    age: ShortText | None = None
    location: ShortText | None = None
    notes: LongText | None = None
    created_at: IsoTimestamp | None = None
    selected_prediction_index: Annotated[int, Field(ge=0, le=1000)] | None = None
    image_decisions: ImageDecisions | None = None
    image_id: IdText | None = None
    blur_score: Annotated[float, Field(allow_inf_nan=False)] | None = None
    device: ShortText | None = None
    # Additive (not sent by the app): photos of one lesion sent as several cases name the same
    # lesion, and then sit on the same side of the evaluation split.
    lesion_id: IdText | None = None


class CaseLogIn(_CaseFields):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "case_id": "12",
                    "status": "Confirmed",
                    "image_paths": ["gp1/3f2b9c1e-8d4a-4a57-9b1e-2c6d7e8f9a0b.jpg"],
                    "predictions": [
                        {"label": "nv", "confidence": 0.81},
                        {"label": "mel", "confidence": 0.11},
                    ],
                    "selected_prediction_index": 0,
                    "symptoms": ["itching"],
                    "gender": "female",
                    "age": "54",
                    "location": "back",
                    "created_at": "2026-12-02T10:15:00",
                }
            ]
        },
    )

    case_id: IdText
    status: StatusText = "pending"
    isLabeled: bool = False


class RejectCaseIn(_CaseFields):
    case_id: IdText
    reason: ShortText | None = None


class CaseUpdateIn(_CaseFields):
    """Only the fields present (and not null) are applied."""

    predictions: list[PredictionIn] | None = Field(None, max_length=64)  # type: ignore[assignment]
    image_paths: list[PathText] | None = Field(None, max_length=64)  # type: ignore[assignment]
    symptoms: list[LongText] | None = Field(None, max_length=64)  # type: ignore[assignment]
    status: StatusText | None = None
    user_id: IdText | None = None
    user_role: ShortText | None = None


class ReleaseIdIn(BaseModel):
    case_id: IdText


class CaseIdOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"case_id": "12"}]})

    case_id: str


class ReleaseIdOut(BaseModel):
    status: str
    reason: str | None = None
    case_id: str | None = None

    @classmethod
    def of(cls, released: Released) -> Self:
        if released.skipped is not None:
            return cls(status="skipped", reason=released.skipped.value)
        return cls(status="ok", case_id=str(released.case_id))


class CaseLoggedOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ok", "message": "logged", "case_id": "12", "case_status": "Confirmed"}
            ]
        }
    )

    status: str
    message: str
    case_id: str
    case_status: str | None = None


class CaseUpdatedOut(BaseModel):
    status: str
    case_id: str


class CaseRecordOut(BaseModel):
    """Every stored field of the case is returned; these are the ones the app relies on."""

    model_config = ConfigDict(extra="allow")

    case_id: str
    user_id: str
    status: str | None
    entry_type: str | None
    predictions: list[dict[str, Any]]
    image_paths: list[str]
    image_ids: list[str]
    symptoms: list[str]
    created_at: str | None
    updated_at: str | None
    received_at: str | None
    isLabeled: bool
    correct_label: str | None
    selected_prediction_index: int | None

    @classmethod
    def from_record(cls, record: CaseRecord) -> Self:
        return cls.model_validate(record_fields(record))


def record_fields(record: CaseRecord) -> dict[str, Any]:
    """The record in the legacy server's key order: the fields every record has, what the app
    stored, the expert labels, then the server's own."""
    fields: dict[str, Any] = {
        "case_id": str(record.case_id),
        "user_id": record.owner_id,
        "user_role": record.owner_role,
        "image_id": None,
        "blur_score": None,
        "device": None,
        "predictions": [],
        "status": record.status,
        "entry_type": record.entry_type,
        "gender": None,
        "age": None,
        "location": None,
        "symptoms": [],
        "notes": None,
        "image_paths": [],
        "isLabeled": False,
        "selected_prediction_index": None,
        "correct_label": None,
    }
    fields.update(record.document)
    for label in record.labels:  # the newest decides; annotation fields outlive a plain label
        fields.update(label_fields(label))
    fields["image_ids"] = list(record.image_ids)
    fields["received_at"] = utc_time(record.decided_at)  # additive: with its offset
    fields["updated_at"] = wire_time(record.updated_at)
    return fields


def label_fields(label: LabelEntry) -> dict[str, Any]:
    """The legacy record fields one label sets."""
    if label.source is LabelSource.ANNOTATION:
        fields: dict[str, Any] = {
            "correct_label": label.correct_label,
            "annotations": label.annotations,
            "annotated_by": label.labeller_id,
            "annotated_at": label.annotated_at or wire_time(label.created_at),
            "annotation_image_index": label.image_index,
        }
        if label.notes:
            fields["annotation_notes"] = label.notes
        return fields
    return {
        "correct_label": label.correct_label,
        "labeled_by": label.labeller_id,
        "labeled_at": wire_time(label.created_at),
        "label_notes": label.notes,
    }


class CaseListOut(BaseModel):
    cases: list[CaseRecordOut]
