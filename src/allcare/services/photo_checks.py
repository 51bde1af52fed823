"""POST /check-image: check the photo, classify it, and store it with its case when it is usable.

CPU work never runs on the event loop: decoding and checks run in a dedicated decode pool sized
with the inference threads (core/config.py ``thread_budget``), inference in the engine's thread,
database and file writes in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session

from allcare.ml.batching import InferenceEngine, NoModel, Prediction, QueueFull
from allcare.ml.classes import CLASS_NAMES
from allcare.ml.photo import CheckedPhoto, PhotoLimits, PhotoRejected, RejectReason, check_photo
from allcare.services.cases import CaseService, parse_case_id
from allcare.services.errors import (
    InvalidInput,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
    Unavailable,
    UnsupportedMedia,
)
from allcare.services.images import ImageService, PendingUpload, PhotoToStore
from allcare.services.principal import Principal
from allcare.store.blobs import BlobStore
from allcare.store.crypto import Sealer
from allcare.store.db import Database

MODEL_NOT_LOADED = "Model not loaded"
_REJECTION_ERRORS: dict[RejectReason, type[ServiceError]] = {
    RejectReason.INVALID: InvalidInput,
    RejectReason.TOO_SMALL: InvalidInput,
    RejectReason.UNSUPPORTED: UnsupportedMedia,
    RejectReason.TOO_MANY_PIXELS: PayloadTooLarge,
}


def ranked_predictions(probabilities: list[float]) -> list[dict[str, Any]]:
    """All classes, highest confidence first: the app takes the first as the diagnosis."""
    pairs = sorted(zip(CLASS_NAMES, probabilities, strict=True), key=lambda p: -p[1])
    return [{"label": label, "confidence": confidence} for label, confidence in pairs]


@dataclass
class PhotoCheckService:
    db: Database
    blobs: BlobStore
    sealer: Sealer
    engine: InferenceEngine
    decode_pool: Executor
    limits: PhotoLimits
    blur_threshold: float

    async def check(
        self, principal: Principal, data: bytes, case_id_text: str | None, predict_only: bool
    ) -> dict[str, Any]:
        case_id = parse_case_id(case_id_text) if case_id_text else None
        if self.engine.model is None:
            raise Unavailable(MODEL_NOT_LOADED)
        if case_id is not None and not predict_only:
            await anyio.to_thread.run_sync(self._check_case, principal, case_id)
        photo = await self._checked(data)
        sharp = photo.blur_score >= self.blur_threshold
        image_id, stored_case = str(uuid.uuid4()), case_id
        if sharp and not predict_only:
            prediction, upload = await self._predict_while_writing(principal, case_id, photo)
            await anyio.to_thread.run_sync(self._finish, upload, principal, photo, prediction)
            image_id, stored_case = upload.image_id, upload.case_id
        else:
            prediction = await self._predict(photo)
        probabilities = [float(p) for p in prediction.probabilities]
        return {
            "status": "success" if sharp else "fail",
            "message": "Image processed"
            if sharp
            else f"Image is too blurry (score={photo.blur_score:.2f}, "
            f"threshold={self.blur_threshold})",
            "blur_score": round(photo.blur_score, 2),
            "predictions": ranked_predictions(probabilities),
            "image_id": image_id,
            "case_id": str(stored_case) if stored_case is not None else None,
            "user_id": principal.user_id,
            "user_role": principal.role.value,
            "model_version": prediction.model_version,
        }

    async def _checked(self, data: bytes) -> CheckedPhoto:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.decode_pool, check_photo, data, self.limits)
        except PhotoRejected as exc:
            raise _REJECTION_ERRORS[exc.reason](exc.detail) from exc

    async def _predict(self, photo: CheckedPhoto) -> Prediction:
        try:
            future = self.engine.submit(photo.model_input)
        except QueueFull as exc:
            raise Overloaded("Too many photos are waiting for analysis; retry shortly") from exc
        except NoModel as exc:
            raise Unavailable(MODEL_NOT_LOADED) from exc
        try:
            return await asyncio.wrap_future(future)
        except NoModel as exc:
            raise Unavailable(MODEL_NOT_LOADED) from exc

    def _check_case(self, principal: Principal, case_id: int) -> None:
        with self.db.session() as session:
            CaseService(session, self.sealer).check_photo_target(principal, case_id)

    async def _predict_while_writing(
        self, principal: Principal, case_id: int | None, photo: CheckedPhoto
    ) -> tuple[Prediction, PendingUpload]:
        """The photo's file is written while the model classifies it; if classification fails,
        the written file is removed again."""
        writing = asyncio.ensure_future(
            anyio.to_thread.run_sync(self._begin_and_write, principal, case_id, photo)
        )
        try:
            prediction = await self._predict(photo)
        except BaseException:
            with contextlib.suppress(Exception):
                upload = await writing
                await anyio.to_thread.run_sync(self._abandon, upload)
            raise
        return prediction, await writing

    def _images(self, session: Session) -> ImageService:
        return ImageService(session, self.blobs, self.sealer, CaseService(session, self.sealer))

    def _begin_and_write(
        self, principal: Principal, case_id: int | None, photo: CheckedPhoto
    ) -> PendingUpload:
        with self.db.session() as session:
            images = self._images(session)
            upload = images.begin_upload(principal, case_id)
            images.write_blob(upload, photo.stored_bytes)
            return upload

    def _finish(
        self,
        upload: PendingUpload,
        principal: Principal,
        photo: CheckedPhoto,
        prediction: Prediction,
    ) -> None:
        with self.db.session() as session:
            self._images(session).finish_upload(
                upload,
                principal,
                PhotoToStore(
                    data=photo.stored_bytes,
                    content_type=photo.stored_content_type,
                    width=photo.width,
                    height=photo.height,
                    blur_score=photo.blur_score,
                    probabilities=[float(p) for p in prediction.probabilities],
                    model_version=prediction.model_version,
                ),
            )

    def _abandon(self, upload: PendingUpload) -> None:
        with self.db.session() as session:
            self._images(session).abandon(upload)
