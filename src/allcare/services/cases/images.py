"""Photos: stored as blobs linked to their case, served only by known (owner, UUID) pairs."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session

from allcare.services.audit.access_log import record_access
from allcare.services.cases.records import CaseService
from allcare.services.errors import NotFound
from allcare.services.principal import Principal, is_valid_user_id
from allcare.store import vectors
from allcare.store.blobs import BlobStore, StoredBlob
from allcare.store.contexts import embedding_context, probabilities_context
from allcare.store.crypto import Sealer
from allcare.store.db import begin_write
from allcare.store.models import Image, table_of

log = logging.getLogger(__name__)
IMAGE_NAMESPACE = "images"
IMAGE_FILE_PATTERN = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})\.jpg$"
)
IMAGE_NOT_FOUND = "Image not found"


@dataclass(frozen=True)
class PhotoToStore:
    data: bytes
    content_type: str
    width: int
    height: int
    blur_score: float | None = None
    probabilities: np.ndarray | None = None
    embedding: np.ndarray | None = None
    model_version: str | None = None


@dataclass
class PendingUpload:
    image_id: str
    case_id: int
    blob_key: str
    blob: StoredBlob | None = None


@dataclass(frozen=True)
class ServedImage:
    data: bytes
    content_type: str
    sha256: str


class ImageService:
    def __init__(
        self, session: Session, blobs: BlobStore, sealer: Sealer, cases: CaseService
    ) -> None:
        self.session = session
        self._blobs = blobs
        self._sealer = sealer
        self._cases = cases

    def begin_upload(self, principal: Principal, case_id: int | None) -> PendingUpload:
        """Claim the case and record the blob intent in one commit, before any file I/O."""
        begin_write(self.session)
        target_case = self._cases.claim_for_photo(principal, case_id)
        image_id = str(uuid.uuid4())
        key = self._blobs.key_for(IMAGE_NAMESPACE, image_id, ".jpg")
        self._blobs.intend(self.session, key)
        self.session.commit()
        return PendingUpload(image_id=image_id, case_id=target_case, blob_key=key)

    def write_blob(self, upload: PendingUpload, data: bytes) -> None:
        """File I/O only (no database): may run while the photo is being classified."""
        try:
            upload.blob = self._blobs.write(upload.blob_key, IMAGE_NAMESPACE, upload.image_id, data)
        except BaseException:
            self.abandon(upload)
            raise

    def finish_upload(
        self, upload: PendingUpload, principal: Principal, photo: PhotoToStore
    ) -> None:
        """The row and the intent's removal commit together; on failure the blob goes again,
        so there is never a row without its file, nor a visible half-written file. A Core
        insert: this commit stands between the prediction and the app's answer."""
        blob = upload.blob
        assert blob is not None, "write_blob first"
        try:
            begin_write(self.session)
            self.session.execute(
                insert(table_of(Image)).values(
                    id=upload.image_id,
                    owner_id=principal.user_id,
                    case_id=upload.case_id,
                    blob_key=blob.key,
                    sha256=blob.sha256,
                    size_bytes=blob.size_bytes,
                    content_type=photo.content_type,
                    key_id=blob.key_id,
                    width=photo.width,
                    height=photo.height,
                    blur_score=photo.blur_score,
                    probabilities=self._seal_vector(
                        photo.probabilities, probabilities_context(upload.image_id)
                    ),
                    embedding=self._seal_vector(
                        photo.embedding, embedding_context(upload.image_id)
                    ),
                    model_version=photo.model_version,
                )
            )
            self._blobs.settle(self.session, blob.key)
            self.session.commit()
        except BaseException:
            self.session.rollback()
            self.abandon(upload)
            raise

    def abandon(self, upload: PendingUpload) -> None:
        self._blobs.discard(upload.blob_key)

    def _seal_vector(self, values: np.ndarray | None, context: str) -> bytes | None:
        return None if values is None else self._sealer.seal(vectors.pack(values), context)

    def open_for_url(self, user_id: str, file_name: str, client: str | None) -> ServedImage:
        """The unauthenticated image URL: only an existing image of that owner. A view is
        recorded in the transaction that serves it; a miss takes no write lock here (the audit
        middleware records it, rate-limited per address)."""
        match = IMAGE_FILE_PATTERN.fullmatch(file_name)
        image = (
            self.session.get(Image, match.group(1)) if match and is_valid_user_id(user_id) else None
        )
        if image is None or image.owner_id != user_id:
            self.session.rollback()
            raise NotFound(IMAGE_NOT_FOUND)
        begin_write(self.session)
        record_access(
            self.session,
            action="image.view",
            resource=f"image:{image.id}",
            outcome="ok",
            actor_id=None,
            actor_kind="anonymous_url",
            owner_id=user_id,
            client=client,
        )
        self.session.commit()
        data = self._blobs.read(image.blob_key, IMAGE_NAMESPACE, image.id)
        return ServedImage(data=data, content_type=image.content_type, sha256=image.sha256)


def url_resource(file_name: str) -> str:
    """What an image URL names, for the audit: the photo's id, or '-' for anything else."""
    match = IMAGE_FILE_PATTERN.fullmatch(file_name)
    return f"image:{match.group(1) if match else '-'}"
