"""Sending photos to /check-image as the app does, and counting what the server kept."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from allcare.store.models import Case
from allcare.store.models import Image as ImageRow
from tests.conftest import Api
from tests.photos import sharp_photo


def upload(client, headers: dict[str, str], data: bytes | None = None, **params: str):
    files = {"file": ("photo.jpg", data if data is not None else sharp_photo(), "image/jpeg")}
    return client.post("/check-image", params=params, files=files, headers=headers)


def camera(user_id: str) -> dict[str, str]:
    """What the app's camera screen sends: legacy identity, no token."""
    return {"X-User-Id": user_id, "X-User-Role": "gp"}


def stored_counts(api: Api) -> tuple[int, int]:
    with api.container.db.session() as session:
        images = session.scalar(select(func.count()).select_from(ImageRow))
        cases = session.scalar(select(func.count()).select_from(Case))
    return images or 0, cases or 0


def blob_files(api: Api) -> list[Path]:
    return [p for p in (api.container.settings.storage_root / "blobs").rglob("*") if p.is_file()]
