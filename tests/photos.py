"""Real image bytes made in the tests, and storing them the way /check-image does."""

from __future__ import annotations

import io

from PIL import Image as PILImage

from allcare.services.cases import CaseService
from allcare.services.images import ImageService, PhotoToStore
from allcare.services.principal import Principal, Role
from allcare.store.models import Image, User


def jpeg_bytes(width: int = 320, height: int = 240, seed: int = 0) -> bytes:
    image = PILImage.new("RGB", (width, height))
    image.putdata(
        [
            ((x * 7 + seed) % 256, (y * 5 + seed) % 256, (x * y) % 256)
            for y in range(height)
            for x in range(width)
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def store_photo(runtime, user_id: str, case_id: int | None, data: bytes | None = None) -> Image:
    with runtime.db.session() as session:
        user = session.get(User, user_id)
        assert user is not None
        principal = Principal(user.id, Role(user.role), user.first_name, user.last_name)
        service = ImageService(
            session, runtime.blobs, runtime.sealer, CaseService(session, runtime.sealer)
        )
        return service.store(
            principal,
            case_id,
            PhotoToStore(
                data=data or jpeg_bytes(), content_type="image/jpeg", width=320, height=240
            ),
        )
