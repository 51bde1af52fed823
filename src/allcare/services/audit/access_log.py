"""Who touched patient data: one append-only row per access, and the queries over them."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, insert, select
from sqlalchemy.orm import Session

from allcare.core.batch_worker import BatchWorker
from allcare.core.clock import now_utc, utc_time
from allcare.store.db import Database, begin_write
from allcare.store.models import AccessEvent, Case, Image, table_of

IMAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FIELDS = (
    "id", "at", "actor_id", "actor_kind", "action", "resource", "owner_id", "client", "outcome",
    "status_code",
)  # fmt: skip


def record_access(
    session: Session,
    *,
    action: str,
    resource: str,
    outcome: str,
    actor_id: str | None,
    actor_kind: str,
    owner_id: str | None = None,
    client: str | None = None,
    status_code: int | None = None,
) -> None:
    session.add(
        AccessEvent(
            actor_id=actor_id,
            actor_kind=actor_kind,
            action=action,
            resource=resource[:160],
            owner_id=owner_id,
            client=(client or "")[:64] or None,
            outcome=outcome,
            status_code=status_code,
        )
    )


@dataclass(frozen=True)
class AccessEntry:
    """One access as a request saw it, before it is written (the owner may be looked up then,
    the time is the write's)."""

    action: str
    resource: str
    outcome: str
    actor_kind: str
    actor_id: str | None = None
    status_code: int | None = None
    owner_id: str | None = None
    client: str | None = None


@dataclass(frozen=True)
class AccessQuery:
    actor: str | None = None
    owner: str | None = None
    case_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def select(self) -> Select[AccessEvent]:
        query = select(AccessEvent)
        if self.actor:
            query = query.where(AccessEvent.actor_id == self.actor)
        if self.owner:
            query = query.where(AccessEvent.owner_id == self.owner)
        if self.case_id:
            query = query.where(AccessEvent.resource == f"case:{self.case_id}")
        if self.action:
            query = query.where(AccessEvent.action == self.action)
        if self.outcome:
            query = query.where(AccessEvent.outcome == self.outcome)
        if self.since is not None:
            query = query.where(AccessEvent.at >= self.since)
        if self.until is not None:
            query = query.where(AccessEvent.at < self.until)
        return query


@dataclass(frozen=True)
class AccessRecord:
    id: int
    at: str  # not an app field: UTC with its offset
    actor_id: str | None
    actor_kind: str
    action: str
    resource: str
    owner_id: str | None
    client: str | None
    outcome: str
    status_code: int | None


def as_record(event: AccessEvent) -> AccessRecord:
    values = {name: getattr(event, name) for name in FIELDS}
    return AccessRecord(**values | {"at": utc_time(event.at)})


def page(
    session: Session, query: AccessQuery, *, limit: int, before: int | None
) -> tuple[list[AccessRecord], int | None]:
    """Newest first; ``before`` is the id the previous page ended at (stable while rows are
    appended). Returns the page and the cursor of the next one."""
    statement = query.select().order_by(AccessEvent.id.desc()).limit(limit + 1)
    if before is not None:
        statement = statement.where(AccessEvent.id < before)
    rows = list(session.scalars(statement))
    more = len(rows) > limit
    rows = rows[:limit]
    return [as_record(e) for e in rows], (rows[-1].id if more and rows else None)


def stream(session: Session, query: AccessQuery, batch: int = 1000) -> Iterator[AccessRecord]:
    """Oldest first, in id order, without holding the whole log in memory (the export)."""
    last = 0
    while True:
        rows = list(
            session.scalars(
                query.select().where(AccessEvent.id > last).order_by(AccessEvent.id).limit(batch)
            )
        )
        if not rows:
            return
        yield from (as_record(e) for e in rows)
        last = rows[-1].id


class AccessWriter:
    """Writes access records from one thread, committing everything that waits in one
    transaction (group commit): under load many records share a commit, alone each gets its
    own. ``submit`` answers a future that completes once the record is durable. Every record
    is written, even one whose waiter was cancelled (the request went away, its access did
    not)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.failures = 0
        self._worker: BatchWorker[AccessEntry, None] = BatchWorker(
            self._write, name="access-audit", run_cancelled=True
        )

    def submit(self, entry: AccessEntry) -> Future[None]:
        return self._worker.submit(entry)

    def close(self) -> None:
        self._worker.close(timeout_s=10)

    def _write(self, entries: list[AccessEntry]) -> list[None]:
        try:
            rows = [_row(entry) for entry in entries]
            with self._db.session() as session:
                _fill_owners(session, rows)
                begin_write(session)
                # A Core insert: one of these follows every audited request.
                session.execute(insert(table_of(AccessEvent)), rows)
                session.commit()
        except Exception:
            self.failures += len(entries)
            raise
        return [None] * len(entries)


def _fill_owners(session: Session, rows: list[dict[str, Any]]) -> None:
    """Whose data a record concerns, where the route could not say: a refused attempt on a
    case or photo (404, 403) names its target, and the owner is looked up here, off the
    request's path. One query per kind for the whole batch."""
    lookups: dict[str, tuple[type[Case] | type[Image], Callable[[str], Any]]] = {
        "case": (Case, _digits),
        "image": (Image, _uuid),
    }
    for kind, (table, parse) in lookups.items():
        wanted: dict[Any, list[dict[str, Any]]] = {}
        for row in rows:
            prefix, _, key = row["resource"].partition(":")
            parsed = parse(key) if prefix == kind and row.get("owner_id") is None else None
            if parsed is not None:
                wanted.setdefault(parsed, []).append(row)
        if not wanted:
            continue
        found = session.execute(select(table.id, table.owner_id).where(table.id.in_(wanted)))
        for key, owner in found:
            for row in wanted[key]:
                row["owner_id"] = owner
    session.rollback()


def _digits(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 15 else None


def _uuid(text: str) -> str | None:
    return text if IMAGE_ID.fullmatch(text) else None


def _row(entry: AccessEntry) -> dict[str, Any]:
    """The Core insert's values (the owner may still be filled in)."""
    return dataclasses.asdict(entry) | {
        "resource": entry.resource[:160],
        "client": (entry.client or "")[:64] or None,
        "at": now_utc(),
    }
