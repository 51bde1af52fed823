import pytest

from allcare.services.errors import TooManyRequests
from allcare.services.throttle import FailureThrottle, LoginThrottle, RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_refuse_after_the_limit_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("alice") is None
        throttle.failed("alice")
        clock.now += 10
    assert throttle.retry_after("alice") == 30  # the first failure leaves the window at +60
    assert throttle.retry_after("bob") is None
    clock.now += 30
    assert throttle.retry_after("alice") is None


def test_clearing_a_key_forgets_its_failures() -> None:
    throttle = FailureThrottle(limit=1, window_s=60, clock=Clock())
    throttle.failed("alice")
    assert throttle.retry_after("alice") == 60
    throttle.clear("alice")
    assert throttle.retry_after("alice") is None


def test_login_throttle_counts_per_user_and_per_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(per_user=2, per_address=3, window_s=100, clock=clock)
    throttle.failed("alice", "10.0.0.1")
    throttle.failed("alice", "10.0.0.2")
    with pytest.raises(TooManyRequests) as refused:
        throttle.check("alice", "10.0.0.9")
    assert refused.value.retry_after == 100
    throttle.check("bob", "10.0.0.9")
    throttle.failed("bob", "10.0.0.9")
    throttle.failed("carol", "10.0.0.9")
    throttle.failed("dave", "10.0.0.9")
    with pytest.raises(TooManyRequests):
        throttle.check("erin", "10.0.0.9")  # a new name from an address that tried too many
    throttle.check("erin", "10.0.0.3")


def test_a_success_clears_the_user_but_not_the_address() -> None:
    throttle = LoginThrottle(per_user=2, per_address=2, window_s=100, clock=Clock())
    throttle.failed("alice", "10.0.0.1")
    throttle.succeeded("alice")
    throttle.failed("alice", "10.0.0.1")
    with pytest.raises(TooManyRequests):
        throttle.check("alice", "10.0.0.1")
    throttle.check("alice", "10.0.0.2")


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
    throttle = FailureThrottle(limit=3, window_s=60, clock=Clock())
    for n in range(100):
        assert throttle.retry_after(f"nobody{n}") is None
    assert len(throttle._failures) == 0
