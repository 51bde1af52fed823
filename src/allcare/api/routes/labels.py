from __future__ import annotations

from fastapi import APIRouter, Request

from allcare.api.audit import note
from allcare.api.deps import ContainerDep, LabelsDep, PrincipalDep
from allcare.api.schemas.common import errors
from allcare.api.schemas.labels import AnnotationIn, LabelIn, LabelOut
from allcare.container import Container
from allcare.services.labels.fields import LabelSource
from allcare.services.labels.records import LabelOutcome, Submission

router = APIRouter(tags=["labels"])


@router.post(
    "/cases/{case_id}/label",
    summary="Label a case with its diagnosis (doctors, admins)",
    responses=errors(400, 401, 403, 404, 413),
    response_model=LabelOut,
)
def label_case(
    case_id: str,
    body: LabelIn,
    principal: PrincipalDep,
    labels: LabelsDep,
    container: ContainerDep,
    request: Request,
) -> LabelOut:
    """Doctors and admins; the newest label of a case wins, older ones stay in its history."""
    outcome = labels.submit(principal, case_id, Submission(body.correct_label, body.notes))
    return _saved(outcome, container, request, "Label submitted successfully")


@router.post(
    "/cases/{case_id}/annotations",
    summary="Label a case with strokes and boxes on a photo",
    responses=errors(400, 401, 403, 404, 413),
    response_model=LabelOut,
)
def annotate_case(
    case_id: str,
    body: AnnotationIn,
    principal: PrincipalDep,
    labels: LabelsDep,
    container: ContainerDep,
    request: Request,
) -> LabelOut:
    """The annotation screen: a label plus strokes and boxes drawn on one of the case's images."""
    submission = Submission(
        correct_label=body.correct_label,
        notes=body.notes,
        source=LabelSource.ANNOTATION,
        image_index=body.image_index,
        annotations=body.annotations.model_dump(),
        annotated_at=body.annotated_at,
        case_owner_hint=body.case_user_id,
    )
    outcome = labels.submit(principal, case_id, submission)
    return _saved(outcome, container, request, "Annotations saved successfully")


def _saved(outcome: LabelOutcome, container: Container, request: Request, message: str) -> LabelOut:
    """The new label may complete the batch that starts a training run (RETRAIN_AUTO)."""
    note(request, resource=f"case:{outcome.case_id}", owner=outcome.owner_id)
    container.training.after_label(outcome)
    return LabelOut(
        status="ok",
        message=message,
        case_id=str(outcome.case_id),
        correct_label=outcome.correct_label,
    )
