import asyncio

import pytest

from allcare.services.accounts.login_throttle import (
    PENDING,
    FailureThrottle,
    LoginThrottle,
    MemoryFailureLog,
)
from allcare.services.cases.throttle import RateLimit
from allcare.services.errors import TooManyRequests


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_refuse_after_the_limit_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert throttle.admit("alice") is None
        throttle.settle("alice", failed=True)
        clock.now += 10
    assert throttle.retry_after("alice") == 30  # the first failure leaves the window at +60
    assert throttle.retry_after("bob") is None
    clock.now += 30
    assert throttle.retry_after("alice") is None


def test_clearing_a_key_forgets_its_failures() -> None:
    throttle = FailureThrottle(limit=1, window_s=60, clock=Clock())
    assert throttle.admit("alice") is None
    throttle.settle("alice", failed=True)
    assert throttle.retry_after("alice") == 60
    throttle.clear("alice")
    assert throttle.retry_after("alice") is None


def fail(throttle: LoginThrottle, username: str, address: str) -> None:
    asyncio.run(throttle.begin(username, address)).failed()


def begins(throttle: LoginThrottle, username: str, address: str) -> bool:
    """Whether an attempt is admitted (and then ended without a verdict)."""
    try:
        attempt = asyncio.run(throttle.begin(username, address))
    except TooManyRequests:
        return False
    attempt.__exit__(None, None, None)
    return True


def test_login_throttle_counts_per_user_and_per_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_user=2, per_address=3, window_s=100, clock=clock)
    fail(throttle, "alice", "10.0.0.1")
    fail(throttle, "alice", "10.0.0.2")
    with pytest.raises(TooManyRequests) as refused:
        asyncio.run(throttle.begin("alice", "10.0.0.9"))
    assert refused.value.retry_after == 100
    fail(throttle, "bob", "10.0.0.9")
    fail(throttle, "carol", "10.0.0.9")
    fail(throttle, "dave", "10.0.0.9")
    assert not begins(throttle, "erin", "10.0.0.9")  # a new name from a guessing address
    assert begins(throttle, "erin", "10.0.0.3")


def test_a_success_clears_the_user_but_not_the_address() -> None:
    throttle = LoginThrottle(per_user=2, per_address=2, window_s=100, clock=Clock())
    fail(throttle, "alice", "10.0.0.1")
    asyncio.run(throttle.begin("alice", "10.0.0.1")).succeeded()
    fail(throttle, "alice", "10.0.0.1")
    assert not begins(throttle, "alice", "10.0.0.1")
    assert begins(throttle, "alice", "10.0.0.2")


def test_attempts_being_checked_hold_back_the_rest_until_they_end() -> None:
    """A parallel burst: past the limit the next attempts wait for the admitted ones; once
    those have failed, they are refused without a check (the right password included)."""

    async def burst(verdict: str) -> list[str]:
        throttle = LoginThrottle(per_user=3, per_address=100, window_s=100, clock=Clock())
        admitted = [await throttle.begin("alice", f"10.0.0.{n}") for n in range(3)]

        async def late(n: int) -> str:
            try:
                attempt = await throttle.begin("alice", f"10.0.1.{n}")
            except TooManyRequests:
                return "refused"
            attempt.succeeded()
            return "admitted"

        waiting = [asyncio.create_task(late(n)) for n in range(4)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in waiting)  # held back, not refused yet
        for attempt in admitted:
            attempt.failed() if verdict == "fail" else attempt.succeeded()
        return list(await asyncio.gather(*waiting))

    assert asyncio.run(burst("fail")) == ["refused"] * 4
    assert asyncio.run(burst("succeed")) == ["admitted"] * 4  # phones sharing an account


def test_waiting_for_attempts_being_checked_is_bounded() -> None:
    async def stuck() -> None:
        throttle = LoginThrottle(
            per_user=1, per_address=100, window_s=100, clock=Clock(), max_wait_s=0.1
        )
        held = await throttle.begin("alice", "10.0.0.1")
        with pytest.raises(TooManyRequests) as refused:
            await throttle.begin("alice", "10.0.0.2")
        assert refused.value.retry_after == 1
        held.failed()

    asyncio.run(stuck())


def test_a_refused_address_leaves_nothing_pending_for_the_user() -> None:
    throttle = LoginThrottle(per_user=2, per_address=1, window_s=100, clock=Clock())
    fail(throttle, "bob", "10.0.0.1")
    for _ in range(5):
        assert not begins(throttle, "alice", "10.0.0.1")
    for _ in range(2):
        assert begins(throttle, "alice", "10.0.0.2")


def test_the_pending_verdict_is_not_a_wait_in_seconds() -> None:
    throttle = FailureThrottle(limit=1, window_s=60, clock=Clock())
    assert throttle.admit("alice") is None
    assert throttle.admit("alice") == PENDING


def test_rate_limit_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limit = RateLimit(per_minute=6, clock=clock)  # one token every 10 s
    assert [limit.take("gp1") for _ in range(6)] == [None] * 6
    assert limit.take("gp1") == 10
    assert limit.take("gp2") is None
    clock.now += 10
    assert limit.take("gp1") is None
    assert limit.take("gp1") == 10
    with pytest.raises(TooManyRequests) as refused:
        limit.check("gp1")
    assert refused.value.retry_after == 10


def test_checking_a_key_that_never_failed_remembers_nothing() -> None:
    """Every login checks its username first; guesses of random names must not pile up."""
    clock = Clock()
    log = MemoryFailureLog(clock)
    throttle = FailureThrottle(limit=3, window_s=60, clock=clock, log=log)
    for n in range(100):
        assert throttle.admit(f"nobody{n}") is None
        throttle.settle(f"nobody{n}", failed=False)
    assert len(log._failures) == 0
    assert len(throttle._pending) == 0
