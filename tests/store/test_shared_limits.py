"""Limits that API replicas share through PostgreSQL: two throttles on one database (two
replicas) count one set of failures and draw from one bucket."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from allcare.services.accounts.login_throttle import LoginThrottle
from allcare.services.cases.throttle import RateLimit
from allcare.services.errors import TooManyRequests
from allcare.store.db import Database
from allcare.store.shared_limits import SharedBuckets, SharedFailureLog
from tests.conftest import empty_postgres_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(postgres_server: str) -> Iterator[Database]:
    with empty_postgres_database(postgres_server) as url:
        database = Database(url)
        database.migrate()
        try:
            yield database
        finally:
            database.dispose()


def _replica_throttle(db: Database, per_user: int = 3) -> LoginThrottle:
    return LoginThrottle(
        per_user=per_user,
        per_address=100,
        window_s=600,
        logs=(SharedFailureLog(db, "user"), SharedFailureLog(db, "address")),
    )


async def _fail(throttle: LoginThrottle, user: str, address: str) -> None:
    with await throttle.begin(user, address) as attempt:
        attempt.failed()


def test_failed_logins_on_one_replica_count_on_the_other(db: Database) -> None:
    a, b = _replica_throttle(db), _replica_throttle(db)

    async def scenario() -> None:
        await _fail(a, "gp1", "10.0.0.1")
        await _fail(b, "gp1", "10.0.0.2")
        await _fail(a, "gp1", "10.0.0.3")
        for replica in (a, b):
            with pytest.raises(TooManyRequests) as refused:
                await replica.begin("gp1", "10.0.0.9")
            assert 590 <= refused.value.retry_after <= 600
        with await b.begin("gp2", "10.0.0.9") as other:  # another account is not affected
            other.succeeded()

    asyncio.run(scenario())


def test_a_right_password_clears_the_account_on_every_replica(db: Database) -> None:
    a, b = _replica_throttle(db), _replica_throttle(db)

    async def scenario() -> None:
        await _fail(a, "gp1", "10.0.0.1")
        await _fail(a, "gp1", "10.0.0.1")
        with await b.begin("gp1", "10.0.0.1") as attempt:
            attempt.succeeded()
        await _fail(b, "gp1", "10.0.0.1")
        await _fail(a, "gp1", "10.0.0.1")
        with await b.begin("gp1", "10.0.0.1") as attempt:  # 2 of 3 since the success
            attempt.succeeded()

    asyncio.run(scenario())
    assert SharedFailureLog(db, "user").recent("gp1", 600)[0] == 0
    assert SharedFailureLog(db, "address").recent("10.0.0.1", 600)[0] == 4


def test_replicas_drawing_at_once_share_one_bucket(db: Database) -> None:
    """Four replicas, 40 parallel uploads against a limit of 12 a minute: exactly 12 pass."""
    replicas = [RateLimit(12, buckets=SharedBuckets(db, "upload")) for _ in range(4)]
    passed: list[bool] = []
    lock = threading.Lock()

    def upload(n: int) -> None:
        wait = replicas[n % 4].take("gp1")
        with lock:
            passed.append(wait is None)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert passed.count(True) == 12
    wait = replicas[0].peek("gp1")
    assert wait is not None
    assert 1 <= wait <= 5  # one token every 5 s
    assert replicas[1].take("gp2") is None  # buckets are per uploader


def test_aged_entries_are_pruned(db: Database) -> None:
    log, buckets = SharedFailureLog(db, "user"), SharedBuckets(db, "upload")
    log.record("gp1")
    buckets.draw("gp1", 5, 1, take=True)
    log.prune(window_s=0.0)
    assert log.recent("gp1", 600)[0] == 0
    buckets.prune()  # touched just now: kept
    assert buckets.draw("gp1", 5, 0.0, take=False) == pytest.approx(4, abs=0.01)
