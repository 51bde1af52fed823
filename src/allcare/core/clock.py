"""Timestamps on the wire: ISO-8601 local time without offset, as the legacy server sent them."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def wire_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone().replace(tzinfo=None).isoformat(timespec="microseconds")
