"""POST /active-learning/candidates (contract 2.13): the query, and the ranked case records."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    model_serializer,
    model_validator,
)

from allcare.api.schemas.cases import CaseRecordOut, record_fields
from allcare.ml.active_learning import StrategyLiteral, StrategyName
from allcare.services.learning.candidate_query import Candidate, CandidatePhoto, Candidates

MAX_TOP_K = 1000


class CandidatesIn(BaseModel):
    """Any other keys are ignored, as the legacy server did. ``top_k`` null or <= 0: all (at
    most 1000); absent: AL_CANDIDATES_TOP_K."""

    model_config = ConfigDict(extra="ignore")

    top_k: StrictInt | None = Field(None, le=MAX_TOP_K)
    entry_type: str | None = Field(None, max_length=16)
    status: str | None = Field(None, max_length=64)
    include_labeled: StrictBool | None = None
    strategy: StrategyLiteral = StrategyName.MARGIN.value


class CandidateOut(CaseRecordOut):
    """A case record with why and where it ranks (its photos with their predictions, under
    ``images``, when it has stored ones). Its keys keep the order the service gave them, as
    the untyped answer had them, so the wire stays byte-for-byte the same."""

    _order: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_order(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        model = handler(data)
        if isinstance(data, dict):
            model._order = list(data)
        return model

    @model_serializer(mode="wrap")
    def _in_given_order(self, handler: SerializerFunctionWrapHandler) -> Any:
        out = handler(self)
        first = {key: out[key] for key in self._order if key in out}
        return first | {key: value for key, value in out.items() if key not in first}

    margin: float
    prediction_margin: float
    uncertainty_score: float
    mel_probability: float
    selection_reason: str
    evaluation_case: bool

    @classmethod
    def from_candidate(cls, candidate: Candidate) -> CandidateOut:
        fields = record_fields(candidate.record)
        if candidate.photos is not None:
            fields["images"] = [_photo(photo) for photo in candidate.photos]
        fields["margin"] = candidate.margin
        fields["prediction_margin"] = candidate.prediction_margin
        fields["uncertainty_score"] = candidate.uncertainty_score
        fields["mel_probability"] = candidate.mel_probability
        fields["selection_reason"] = candidate.selection_reason
        fields["evaluation_case"] = candidate.evaluation_case
        return cls.model_validate(fields)


def _photo(photo: CandidatePhoto) -> dict[str, Any]:
    """A photo entry as the legacy answer had it: its predictions only when it has them."""
    entry: dict[str, Any] = {"path": photo.path, "image_id": photo.image_id}
    if photo.predictions is not None:
        entry["predictions"] = [
            {"label": p.label, "confidence": p.confidence} for p in photo.predictions
        ]
        entry["blur_score"] = photo.blur_score
        entry["status"] = "success"
        entry["model_version"] = photo.model_version
    return entry


class SafeguardOut(BaseModel):
    quota: float
    suspicion: float
    added: int


class CandidatesOut(BaseModel):
    candidates: list[CandidateOut]
    total_candidates: int
    evaluation_share: float
    evaluation_candidates: int
    selection_method: str
    description: str
    strategy: str
    pool_size: int
    melanoma_safeguard: SafeguardOut

    @classmethod
    def of(cls, found: Candidates) -> CandidatesOut:
        return cls(
            candidates=[CandidateOut.from_candidate(candidate) for candidate in found.candidates],
            total_candidates=len(found.candidates),
            evaluation_share=found.evaluation_share,
            evaluation_candidates=found.evaluation_candidates,
            selection_method=found.selection_method,
            description=found.description,
            strategy=found.strategy,
            pool_size=found.pool_size,
            melanoma_safeguard=SafeguardOut(
                quota=found.mel_quota, suspicion=found.mel_suspicion, added=found.safeguarded
            ),
        )


class NoCandidatesOut(BaseModel):
    candidates: list[CandidateOut] = Field(default_factory=list)
    total_candidates: Literal[0] = 0
    message: str
