"""Sending photos to /check-image as the app does, and counting what the server kept."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, update

from allcare.core.clock import now_utc
from allcare.core.config import Settings
from allcare.store.models import BlobIntent, Case
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


def let_intent_leases_pass(settings: Settings) -> None:
    """On PostgreSQL an upload's intent counts as abandoned only once BLOB_INTENT_LEASE_S has
    passed (another replica may still be writing it): age every intent past it, as waiting out
    the lease would. SQLite needs nothing: its one writer removes every intent at start-up."""
    if settings.sqlalchemy_url.startswith("sqlite"):
        return
    engine = create_engine(settings.sqlalchemy_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(BlobIntent).values(
                    created_at=now_utc() - timedelta(seconds=2 * settings.blob_intent_lease_s)
                )
            )
    finally:
        engine.dispose()
