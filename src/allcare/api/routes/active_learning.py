from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request

from allcare.api.audit import note
from allcare.api.deps import ContainerDep, PrincipalDep, SessionDep
from allcare.api.schemas.candidates import (
    MAX_TOP_K,
    CandidatesIn,
    CandidatesOut,
    NoCandidatesOut,
)
from allcare.api.schemas.common import errors
from allcare.ml.active_learning import StrategyName
from allcare.services.learning.active_learning import ActiveLearningService
from allcare.services.learning.candidate_query import CandidateQuery, Candidates, NoCandidates

router = APIRouter(tags=["active learning"])


@router.post(
    "/active-learning/candidates",
    summary="The cases worth labelling next",
    responses=errors(400, 401, 413),
    response_model=CandidatesOut | NoCandidatesOut,
)
def candidates(
    body: Annotated[CandidatesIn, Body()],
    principal: PrincipalDep,
    session: SessionDep,
    container: ContainerDep,
    request: Request,
) -> CandidatesOut | NoCandidatesOut:
    """The least certain unlabelled cases, for labelling; doctors and admins see every GP's."""
    settings = container.settings
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
        strategy=StrategyName(body.strategy),
        mel_quota=settings.al_mel_quota,
        mel_suspicion=settings.al_mel_suspicion,
        evaluation_share=settings.al_evaluation_share,
        holdout_share=settings.eval_holdout_share,
    )
    service = ActiveLearningService(session, container.sealer, container.opened_probabilities)
    answer = service.candidates(principal, query)
    owner = None if principal.sees_all_cases else principal.user_id
    found = len(answer.candidates) if isinstance(answer, Candidates) else 0
    note(request, resource=f"candidates:{found}", owner=owner)
    if isinstance(answer, NoCandidates):
        return NoCandidatesOut(message=answer.message)
    return CandidatesOut.of(answer)
