from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile

from allcare.api.deps import CameraPrincipalDep
from allcare.services.cases import parse_case_id
from allcare.services.errors import Unavailable

router = APIRouter(tags=["images"])


@router.post("/check-image")
def check_image(
    principal: CameraPrincipalDep,
    file: Annotated[UploadFile, File()],
    case_id: Annotated[str | None, Query(max_length=64)] = None,
    predict_only: bool = False,
) -> None:
    """Identity is checked first; without a loaded model nothing is stored (D18)."""
    if case_id:
        parse_case_id(case_id)
    raise Unavailable("Model not loaded")
