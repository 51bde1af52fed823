from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from pydantic import BaseModel

from allcare.api.audit import note
from allcare.api.deps import CameraPrincipalDep, RuntimeDep
from allcare.api.schemas.common import Prediction
from allcare.services.photo_checks import uploader_key

router = APIRouter(tags=["images"])


class CheckImageOut(BaseModel):
    status: str
    message: str
    blur_score: float
    predictions: list[Prediction]
    image_id: str
    case_id: str | None
    user_id: str
    user_role: str | None
    model_version: str


@router.post("/check-image", response_model=CheckImageOut)
async def check_image(
    principal: CameraPrincipalDep,
    runtime: RuntimeDep,
    request: Request,
    file: Annotated[UploadFile, File()],
    case_id: Annotated[str | None, Query(max_length=64)] = None,
    predict_only: bool = False,
) -> dict[str, object]:
    """Blur check and classification; a sharp photo is stored with its case unless predict_only.
    A blurry photo answers 200 with ``status: "fail"`` (the app's retake dialog), stored nowhere.
    Each user may send UPLOAD_RATE_PER_MINUTE photos a minute (bursts as large), counted apart
    for the camera's header identity per client address; then 429."""
    if case_id:
        note(request, resource=f"case:{case_id.strip()[:40]}")  # kept if the upload is refused
    address = request.client.host if request.client else None
    uploader = uploader_key(principal, address)
    runtime.upload_rate.check(uploader)
    data = await file.read()
    answer = await runtime.photo_checks.check(principal, data, case_id, predict_only, uploader)
    if answer["status"] == "success" and not predict_only:
        note(request, resource=f"image:{answer['image_id']}", owner=principal.user_id)
    else:
        target = f"case:{answer['case_id']}" if answer["case_id"] else "photo:not stored"
        note(request, resource=target, owner=principal.user_id)
    return answer
