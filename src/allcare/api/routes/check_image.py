from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from pydantic import BaseModel, ConfigDict

from allcare.api.audit import note
from allcare.api.deps import CameraPrincipalDep, ContainerDep
from allcare.api.schemas.common import Prediction, errors
from allcare.services.cases.photo_checks import PhotoChecked, uploader_key
from allcare.services.principal import Principal

router = APIRouter(tags=["images"])


class CheckImageOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "success",
                    "message": "Image processed",
                    "blur_score": 183.52,
                    "predictions": [
                        {"label": "nv", "confidence": 0.81},
                        {"label": "mel", "confidence": 0.11},
                        {"label": "bkl", "confidence": 0.04},
                        {"label": "bcc", "confidence": 0.02},
                        {"label": "akiec", "confidence": 0.015},
                        {"label": "df", "confidence": 0.005},
                        {"label": "vasc", "confidence": 0.01},
                    ],
                    "image_id": "3f2b9c1e-8d4a-4a57-9b1e-2c6d7e8f9a0b",
                    "case_id": "12",
                    "user_id": "gp1",
                    "user_role": "gp",
                    "model_version": "v20261202_001",
                }
            ]
        }
    )

    status: str
    message: str
    blur_score: float
    predictions: list[Prediction]
    image_id: str
    case_id: str | None
    user_id: str
    user_role: str | None
    model_version: str

    @classmethod
    def of(cls, checked: PhotoChecked, principal: Principal) -> CheckImageOut:
        if checked.sharp:
            message = "Image processed"
        else:
            message = (
                f"Image is too blurry (score={checked.blur_score:.2f}, "
                f"threshold={checked.blur_threshold})"
            )
        return cls(
            status="success" if checked.sharp else "fail",
            message=message,
            blur_score=round(checked.blur_score, 2),
            predictions=[
                Prediction(label=p.label, confidence=p.confidence) for p in checked.predictions
            ],
            image_id=checked.image_id,
            case_id=str(checked.case_id) if checked.case_id is not None else None,
            user_id=principal.user_id,
            user_role=principal.role.value,
            model_version=checked.model_version,
        )


@router.post(
    "/check-image",
    summary="Check a photo's sharpness and classify it",
    responses=errors(400, 401, 403, 404, 413, 415, 429, 503),
    response_model=CheckImageOut,
)
async def check_image(
    principal: CameraPrincipalDep,
    container: ContainerDep,
    request: Request,
    file: Annotated[UploadFile, File()],
    case_id: Annotated[str | None, Query(max_length=64)] = None,
    predict_only: bool = False,
) -> CheckImageOut:
    """Blur check and classification; a sharp photo is stored with its case unless predict_only.
    A blurry photo answers 200 with ``status: "fail"`` (the app's retake dialog), stored nowhere.
    Each user may send UPLOAD_RATE_PER_MINUTE photos a minute (bursts as large), counted apart
    for the camera's header identity per client address; then 429."""
    if case_id:
        note(request, resource=f"case:{case_id.strip()[:40]}")  # kept if the upload is refused
    address = request.client.host if request.client else None
    uploader = uploader_key(principal, address)
    container.upload_rate.check(uploader)
    data = await file.read()
    checked = await container.photo_checks.check(principal, data, case_id, predict_only, uploader)
    if checked.sharp and not predict_only:
        note(request, resource=f"image:{checked.image_id}", owner=principal.user_id)
    else:
        target = f"case:{checked.case_id}" if checked.case_id is not None else "photo:not stored"
        note(request, resource=target, owner=principal.user_id)
    return CheckImageOut.of(checked, principal)
