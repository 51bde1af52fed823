"""POST /check-image: check the photo, classify it, and store it with its case when it is usable.

CPU work never runs on the event loop: decoding and checks run in a dedicated decode pool sized
with the inference threads (core/config.py ``thread_budget``), inference in the engine's thread,
database and file writes in worker threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import uuid
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import numpy as np

from allcare.core.batch_worker import QueueFull
from allcare.core.fair_limiter import FairLimiter
from allcare.ml.batching import InferenceEngine, NoModel, Prediction
from allcare.ml.photo import CheckedPhoto, PhotoLimits, PhotoRejected, RejectReason, check_photo
from allcare.services.cases.images import ImageService, PendingUpload, PhotoToStore
from allcare.services.cases.predictions import Prediction as RankedPrediction
from allcare.services.cases.predictions import ranked
from allcare.services.cases.records import CaseService, parse_case_id
from allcare.services.errors import (
    InvalidInput,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
    Unavailable,
    UnsupportedMedia,
)
from allcare.services.principal import AuthMethod, Principal
from allcare.store.blobs import BlobStore
from allcare.store.crypto import Sealer
from allcare.store.db import Database

# The app reads only the status; the text tells the administrator what to do.
MODEL_NOT_LOADED = (
    "Model not loaded: set MODEL_PATH to a model file, or promote a registered version "
    "(allcare models promote VERSION)"
)
_REJECTION_ERRORS: dict[RejectReason, type[ServiceError]] = {
    RejectReason.INVALID: InvalidInput,
    RejectReason.TOO_SMALL: InvalidInput,
    RejectReason.TOO_COSTLY: InvalidInput,
    RejectReason.UNSUPPORTED: UnsupportedMedia,
    RejectReason.TOO_MANY_PIXELS: PayloadTooLarge,
}


def uploader_key(principal: Principal, address: str | None) -> str:
    """Whose budget an upload spends and whose turn it takes in the decode queue. A token is
    its user's own; the camera's header identity proves nothing, so it is counted per client
    address and claimed user, and nobody naming a GP can use up that GP's signed-in uploads."""
    if principal.method == AuthMethod.TOKEN:
        return f"user:{principal.user_id}"
    return f"header:{address or '-'}:{principal.user_id}"


@dataclass(frozen=True)
class PhotoChecked:
    """A photo's answer. A blurry photo (``sharp`` false) is classified but stored nowhere;
    ``case_id`` is None when nothing was stored and no case was named."""

    sharp: bool
    blur_score: float
    blur_threshold: float
    predictions: tuple[RankedPrediction, ...]
    image_id: str
    case_id: int | None
    model_version: str


@dataclass
class PhotoCheckService:
    db: Database
    blobs: BlobStore
    sealer: Sealer
    engine: InferenceEngine
    decode_pool: Executor
    limits: PhotoLimits
    blur_threshold: float
    decode_workers: int
    # Every queued photo may have a thread waiting to store it; the separate limiter keeps those
    # waits from taking the threads that other requests' database work needs.
    _storing: anyio.CapacityLimiter = field(init=False)
    # Decoding takes turns between uploaders: a stream of costly photos from one client delays
    # another client's photo by at most one decode per active uploader, not by its whole queue.
    _decode_turns: FairLimiter = field(init=False)

    def __post_init__(self) -> None:
        self._storing = anyio.CapacityLimiter(self.engine.capacity)
        self._decode_turns = FairLimiter(self.decode_workers)

    async def check(
        self,
        principal: Principal,
        data: bytes,
        case_id_text: str | None,
        predict_only: bool,
        uploader: str,
    ) -> PhotoChecked:
        case_id = parse_case_id(case_id_text) if case_id_text else None
        if self.engine.model is None:
            raise Unavailable(MODEL_NOT_LOADED)
        target = None if predict_only else case_id
        photo, pending = await self._checked(principal, data, target, uploader)
        sharp = photo.blur_score >= self.blur_threshold
        image_id, stored_case = str(uuid.uuid4()), case_id
        if sharp and not predict_only:
            prediction, upload = await anyio.to_thread.run_sync(
                self._store, principal, case_id, photo, pending, limiter=self._storing
            )
            image_id, stored_case = upload.image_id, upload.case_id
        else:
            prediction = await _awaited(pending)
        return PhotoChecked(
            sharp=sharp,
            blur_score=photo.blur_score,
            blur_threshold=self.blur_threshold,
            predictions=ranked([float(p) for p in prediction.probabilities]),
            image_id=image_id,
            case_id=stored_case,
            model_version=prediction.model_version,
        )

    async def _checked(
        self, principal: Principal, data: bytes, target_case: int | None, uploader: str
    ) -> tuple[CheckedPhoto, Future[Prediction]]:
        """Decode and check the photo while the database confirms the caller may add to the
        target case; either refusal wins before any model work. The decode thread hands the
        photo to the model itself, so inference starts without a hop through the event loop."""
        loop = asyncio.get_running_loop()
        refused = threading.Event()
        # The request's context (its id on every log line) goes along to the decode thread.
        context = contextvars.copy_context()
        await self._decode_turns.acquire(uploader)
        try:
            decoding = loop.run_in_executor(
                self.decode_pool, context.run, self._decode_and_submit, data, refused
            )
        except BaseException:
            self._decode_turns.release()
            raise
        # The turn ends when the decode thread is done, even if the request was cancelled.
        decoding.add_done_callback(lambda _: self._decode_turns.release())
        try:
            if target_case is not None:
                await anyio.to_thread.run_sync(self._check_case, principal, target_case)
            photo, pending = await decoding
        except PhotoRejected as exc:
            raise _REJECTION_ERRORS[exc.reason](exc.detail) from exc
        except BaseException:
            # Refused or cancelled: neither the photo's verdict nor its inference is needed.
            refused.set()
            decoding.add_done_callback(_discard_outcome)
            raise
        assert pending is not None, "only a refused request skips inference"
        return photo, pending

    def _decode_and_submit(
        self, data: bytes, refused: threading.Event
    ) -> tuple[CheckedPhoto, Future[Prediction] | None]:
        photo = check_photo(data, self.limits)
        return photo, None if refused.is_set() else self._submit(photo)

    def _submit(self, photo: CheckedPhoto) -> Future[Prediction]:
        try:
            return self.engine.submit(photo.model_input)
        except QueueFull as exc:
            raise Overloaded("Too many photos are waiting for analysis; retry shortly") from exc
        except NoModel as exc:
            raise Unavailable(MODEL_NOT_LOADED) from exc

    def _check_case(self, principal: Principal, case_id: int) -> None:
        with self.db.session() as session:
            CaseService(session, self.sealer).check_photo_target(principal, case_id)

    def _store(
        self,
        principal: Principal,
        case_id: int | None,
        photo: CheckedPhoto,
        pending: Future[Prediction],
    ) -> tuple[Prediction, PendingUpload]:
        """One worker thread claims the case and writes the file while the model runs, then
        commits the image row as soon as the prediction is ready (no hop back to the event loop
        in between). If classification fails, the written file is removed again."""
        with self.db.session() as session:
            images = ImageService(
                session, self.blobs, self.sealer, CaseService(session, self.sealer)
            )
            upload = images.begin_upload(principal, case_id)
            images.write_blob(upload, photo.stored_bytes)
            try:
                prediction = _waited(pending)
            except BaseException:
                images.abandon(upload)
                raise
            images.finish_upload(
                upload,
                principal,
                PhotoToStore(
                    data=photo.stored_bytes,
                    content_type=photo.stored_content_type,
                    width=photo.width,
                    height=photo.height,
                    blur_score=photo.blur_score,
                    probabilities=prediction.probabilities.astype(np.float32),
                    embedding=prediction.embedding,
                    model_version=prediction.model_version,
                ),
            )
            return prediction, upload


def _discard_outcome(decoding: asyncio.Future[Any]) -> None:
    """The request already failed; the photo's own verdict is not needed."""
    if not decoding.cancelled():
        decoding.exception()


async def _awaited(pending: Future[Prediction]) -> Prediction:
    try:
        return await asyncio.wrap_future(pending)
    except NoModel as exc:
        raise Unavailable(MODEL_NOT_LOADED) from exc


def _waited(pending: Future[Prediction]) -> Prediction:
    try:
        return pending.result()
    except NoModel as exc:
        raise Unavailable(MODEL_NOT_LOADED) from exc
