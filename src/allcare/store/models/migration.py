"""What ``allcare migrate`` brought in from the old server."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from allcare.store.models._base import Base, UTCDateTime, utcnow


class LegacyImport(Base):
    """What a migration from the old server brought in, so that a second run imports nothing
    twice, and how old identifiers map to new ones (colliding case ids are renumbered)."""

    __tablename__ = "legacy_imports"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    legacy_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    new_key: Mapped[str] = mapped_column(String(255))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
