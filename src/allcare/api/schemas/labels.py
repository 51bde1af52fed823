"""Label and annotation bodies (contract 2.11, 2.12), bounded and shape-checked (D8, D26).

Annotation coordinates are Flutter logical pixels of the on-screen image widget (the app sends
neither the widget size nor the zoom), so they are kept verbatim within a generous canvas: a
little below zero (a finger dragged past the edge) up to 10,000.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from allcare.api.schemas.common import IsoTimestamp, LongText

LabelCode = Literal["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc", "unknown"]
CANVAS_MIN, CANVAS_MAX = -100.0, 10_000.0
MAX_POINTS = 100_000

Coordinate = Annotated[float, Field(ge=CANVAS_MIN, le=CANVAS_MAX, allow_inf_nan=False)]
Extent = Annotated[float, Field(gt=0, le=CANVAS_MAX - CANVAS_MIN, allow_inf_nan=False)]


class Stroke(BaseModel):
    model_config = ConfigDict(extra="ignore")

    points: list[tuple[Coordinate, Coordinate]] = Field(max_length=10_000)
    color: int = Field(0xFF000000, ge=0, le=0xFFFFFFFF)
    size: float = Field(4.0, gt=0, le=500, allow_inf_nan=False)
    isEraser: bool = False


class Box(BaseModel):
    model_config = ConfigDict(extra="ignore")

    left: Coordinate
    top: Coordinate
    width: Extent
    height: Extent

    @model_validator(mode="after")
    def _inside_canvas(self) -> Box:
        if self.left + self.width > CANVAS_MAX or self.top + self.height > CANVAS_MAX:
            raise ValueError(f"box reaches beyond the {CANVAS_MAX:.0f}-pixel canvas")
        return self


class Annotations(BaseModel):
    model_config = ConfigDict(extra="ignore")

    strokes: list[Stroke] = Field(default_factory=list, max_length=1000)
    boxes: list[Box] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _bounded(self) -> Annotations:
        points = sum(len(stroke.points) for stroke in self.strokes)
        if points > MAX_POINTS:
            raise ValueError(f"{points} stroke points; at most {MAX_POINTS} per annotation")
        return self


class LabelIn(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"correct_label": "mel", "notes": "irregular network, regression"}]
        },
    )

    correct_label: LabelCode
    notes: LongText | None = None


class AnnotationIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    image_index: int = Field(ge=0, le=63)
    correct_label: LabelCode
    annotations: Annotations = Field(default_factory=Annotations)
    case_user_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    notes: LongText | None = None
    annotated_at: IsoTimestamp | None = None


class LabelOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "message": "Label submitted successfully",
                    "case_id": "12",
                    "correct_label": "mel",
                }
            ]
        }
    )

    status: str
    message: str
    case_id: str
    correct_label: str
