"""Timestamps on the wire. The fields the app parses keep the legacy form (ISO-8601 local time,
no offset); every field the legacy server did not have, and every export, carries its offset."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """A timestamp without offset means local time, like every timestamp on the wire and in
    the legacy files."""
    return moment.astimezone() if moment.tzinfo is None else moment


def wire_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone().replace(tzinfo=None).isoformat(timespec="microseconds")


def utc_time(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with an explicit ``+00:00``: unambiguous across time zones and DST."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
