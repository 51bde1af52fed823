"""Failed logins and token buckets in PostgreSQL, so every API replica counts the same.

Times come from the database's clock (``now()``), never a replica's: replicas whose clocks
disagree still agree on the window. A token bucket is one row, read ``FOR UPDATE`` so two
replicas drawing at once take two tokens, not one. Used only with PostgreSQL; with SQLite the
one server process keeps the same limits in memory (services/accounts/login_throttle.py,
services/cases/throttle.py).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from allcare.store.db import Database
from allcare.store.models import LoginFailure, RateBucket

IDLE_BUCKET = timedelta(hours=1)  # a bucket untouched this long is full again: drop its row


class SharedFailureLog:
    """Failures per key (``<namespace>:<key>``) inside a sliding window."""

    def __init__(self, db: Database, namespace: str) -> None:
        self._db = db
        self._namespace = namespace

    def recent(self, key: str, window_s: float) -> tuple[int, float]:
        """How many failures are in the window, and seconds until the oldest leaves it."""
        name = self._name(key)
        with self._db.session() as session:
            count, oldest, now = session.execute(
                select(func.count(), func.min(LoginFailure.at), func.now()).where(
                    LoginFailure.key == name,
                    LoginFailure.at > func.now() - timedelta(seconds=window_s),
                )
            ).one()
        if not count or oldest is None:
            return 0, 0.0
        return int(count), (oldest + timedelta(seconds=window_s) - now).total_seconds()

    def record(self, key: str) -> None:
        with self._db.session() as session:
            session.execute(insert(LoginFailure).values(key=self._name(key), at=func.now()))
            session.commit()

    def clear(self, key: str) -> None:
        with self._db.session() as session:
            session.execute(delete(LoginFailure).where(LoginFailure.key == self._name(key)))
            session.commit()

    def prune(self, window_s: float) -> None:
        """Forget failures that left the window (the running server calls this now and then)."""
        with self._db.session() as session:
            session.execute(
                delete(LoginFailure).where(
                    LoginFailure.key.startswith(f"{self._namespace}:"),
                    LoginFailure.at <= func.now() - timedelta(seconds=window_s),
                )
            )
            session.commit()

    def _name(self, key: str) -> str:
        return f"{self._namespace}:{key}"[:200]


class SharedBuckets:
    """Token buckets per key, refilled by the database clock."""

    def __init__(self, db: Database, namespace: str) -> None:
        self._db = db
        self._namespace = namespace

    def draw(self, key: str, capacity: float, rate: float, *, take: bool) -> float:
        """The tokens the bucket holds now; with ``take`` one is removed if there is one."""
        name = f"{self._namespace}:{key}"[:200]
        with self._db.session() as session:
            session.execute(
                pg_insert(RateBucket)
                .values(key=name, tokens=capacity, updated_at=func.now())
                .on_conflict_do_nothing(index_elements=["key"])
            )
            tokens, updated_at, now = session.execute(
                select(RateBucket.tokens, RateBucket.updated_at, func.now())
                .where(RateBucket.key == name)
                .with_for_update()
            ).one()
            tokens = min(capacity, tokens + max(0.0, (now - updated_at).total_seconds()) * rate)
            if take:
                left = tokens - 1.0 if tokens >= 1.0 else tokens
                session.execute(
                    update(RateBucket)
                    .where(RateBucket.key == name)
                    .values(tokens=left, updated_at=now)
                )
            session.commit()
        return float(tokens)

    def prune(self) -> None:
        with self._db.session() as session:
            session.execute(
                delete(RateBucket).where(
                    RateBucket.key.startswith(f"{self._namespace}:"),
                    RateBucket.updated_at <= func.now() - IDLE_BUCKET,
                )
            )
            session.commit()
