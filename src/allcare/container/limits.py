"""The request limits a server enforces: in memory with SQLite (the one server process), in
PostgreSQL otherwise, so API replicas share one count instead of each keeping its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from allcare.core.config import Settings
from allcare.services.accounts.login_throttle import LoginThrottle
from allcare.services.cases.throttle import MissLimit, RateLimit
from allcare.store.db import Database
from allcare.store.shared_limits import SharedBuckets, SharedFailureLog


@dataclass(frozen=True)
class Limits:
    login: LoginThrottle
    uploads: RateLimit
    url_misses: MissLimit
    prune: Callable[[], None]
    """Forget what has aged out (shared limits only; memory ones bound themselves)."""


def build_limits(settings: Settings, db: Database) -> Limits:
    window = settings.login_failure_window_s
    if db.is_sqlite:
        return Limits(
            login=LoginThrottle(
                settings.login_max_failures, settings.login_max_failures_per_address, window
            ),
            uploads=RateLimit(settings.upload_rate_per_minute),
            url_misses=MissLimit(settings.image_url_misses_per_minute),
            prune=lambda: None,
        )
    users, addresses = SharedFailureLog(db, "user"), SharedFailureLog(db, "address")
    uploads, misses = SharedBuckets(db, "upload"), SharedBuckets(db, "miss")

    def prune() -> None:
        users.prune(window)
        addresses.prune(window)
        uploads.prune()
        misses.prune()

    return Limits(
        login=LoginThrottle(
            settings.login_max_failures,
            settings.login_max_failures_per_address,
            window,
            logs=(users, addresses),
        ),
        uploads=RateLimit(settings.upload_rate_per_minute, buckets=uploads),
        url_misses=MissLimit(settings.image_url_misses_per_minute, buckets=misses),
        prune=prune,
    )
