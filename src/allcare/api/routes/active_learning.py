from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from allcare.api.audit import note
from allcare.api.deps import PrincipalDep, RuntimeDep, SessionDep
from allcare.api.schemas.common import errors
from allcare.services.active_learning import ActiveLearningService, CandidateQuery

router = APIRouter(tags=["active learning"])
MAX_TOP_K = 1000


class CandidatesIn(BaseModel):
    """Any other keys are ignored, as the legacy server did. ``top_k`` null or <= 0: all (at
    most 1000); absent: AL_CANDIDATES_TOP_K."""

    model_config = ConfigDict(extra="ignore")

    top_k: StrictInt | None = Field(None, le=MAX_TOP_K)
    entry_type: str | None = Field(None, max_length=16)
    status: str | None = Field(None, max_length=64)
    include_labeled: StrictBool | None = None
    strategy: Literal["margin", "entropy", "least_confidence", "diversity", "random"] = "margin"


@router.post(
    "/active-learning/candidates",
    summary="The cases worth labelling next",
    responses=errors(400, 401, 413),
)
def candidates(
    body: Annotated[CandidatesIn, Body()],
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
) -> dict[str, Any]:
    """The least certain unlabelled cases, for labelling; doctors and admins see every GP's."""
    settings = runtime.settings
    top_k = settings.al_candidates_top_k if "top_k" not in body.model_fields_set else body.top_k
    entry_type, status = body.entry_type, body.status
    include_labeled = body.include_labeled
    query = CandidateQuery(
        top_k=MAX_TOP_K if top_k is None or top_k <= 0 else top_k,
        entry_type=settings.al_candidates_entry_type if entry_type is None else entry_type,
        status=settings.al_candidates_status if status is None else status,
        include_labeled=(
            settings.al_candidates_include_labeled if include_labeled is None else include_labeled
        ),
        strategy=body.strategy,
        mel_quota=settings.al_mel_quota,
        mel_suspicion=settings.al_mel_suspicion,
        evaluation_share=settings.al_evaluation_share,
        holdout_share=settings.eval_holdout_share,
    )
    service = ActiveLearningService(session, runtime.sealer, runtime.opened_probabilities)
    answer = service.candidates(principal, query)
    owner = None if principal.sees_all_cases else principal.user_id
    note(request, resource=f"candidates:{answer['total_candidates']}", owner=owner)
    return answer
