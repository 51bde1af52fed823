"""Abuse limits kept in memory (one server process per STORAGE_ROOT): failed logins per
username and per client address, and photo uploads per user.

Both answer how many seconds to wait, for a 429 with ``Retry-After``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable

from allcare.services.errors import TooManyRequests

MAX_KEYS = 100_000  # beyond this the least recently seen keys are forgotten


class FailureThrottle:
    """A key with ``limit`` failures inside ``window_s`` is refused until the oldest of them
    leaves the window (a sliding window: no reset a bot could wait for).

    Attempts still being checked count as failures until they are settled: a burst of
    parallel guesses is admitted only up to the limit, however long the password check takes.
    """

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._pending: Counter[str] = Counter()
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int | None:
        with self._lock:
            return self._retry_after(key)

    def admit(self, key: str) -> int | None:
        """None, with one attempt pending for ``key``, or the seconds to wait (nothing pending)."""
        with self._lock:
            wait = self._retry_after(key)
            if wait is None:
                self._pending[key] += 1
            return wait

    def settle(self, key: str, *, failed: bool) -> None:
        """An admitted attempt ended: a failure is remembered, anything else only un-pends."""
        with self._lock:
            self._pending[key] -= 1
            if self._pending[key] <= 0:
                del self._pending[key]
            if failed:
                self._record(key)

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _retry_after(self, key: str) -> int | None:
        failures = self._recent(key) if key in self._failures else ()
        if len(failures) + self._pending[key] < self.limit:
            return None
        if len(failures) < self.limit:  # full only with attempts still being checked
            return max(1, math.ceil(self.window_s))
        return max(1, math.ceil(failures[0] + self.window_s - self._clock()))

    def _record(self, key: str) -> None:
        self._recent(key).append(self._clock())
        self._failures.move_to_end(key)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        horizon = self._clock() - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures


class RateLimit:
    """A token bucket per key: ``per_minute`` requests a minute on average, bursts up to the
    same number."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Counts one request for ``key``; over the rate, a 429 that says when to retry."""
        wait = self.take(key)
        if wait is not None:
            raise TooManyRequests(
                f"Too many photos in a short time; retry in {wait} s", retry_after=wait
            )

    def peek(self, key: str) -> int | None:
        """What ``take`` would answer, without taking."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            return None if tokens >= 1.0 else max(1, math.ceil((1.0 - tokens) / self.rate))

    def take(self, key: str) -> int | None:
        """None when allowed, else the seconds until the next request would be."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return max(1, math.ceil((1.0 - tokens) / self.rate))
            self._buckets[key] = (tokens - 1.0, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
            return None


class LoginThrottle:
    """Failed logins counted per username (guessing one account's password) and per client
    address (trying many accounts). Either over its limit refuses every attempt, a right
    password included, until the window has moved past the oldest failure. An attempt counts
    from the moment it is admitted, before its password is checked."""

    def __init__(
        self,
        per_user: int,
        per_address: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = FailureThrottle(per_user, window_s, clock)
        self._addresses = FailureThrottle(per_address, window_s, clock)

    def begin(self, username: str, address: str | None) -> LoginAttempt:
        """Admit one attempt (pending on both counts) or raise 429 without admitting it."""
        user_key = username[:128]
        wait = self._users.admit(user_key)
        if wait is None and address:
            wait = self._addresses.admit(address)
            if wait is not None:
                self._users.settle(user_key, failed=False)
        if wait is not None:
            raise TooManyRequests(
                f"Too many failed login attempts; retry in {wait} s", retry_after=wait
            )
        return LoginAttempt(self, user_key, address)

    def _settle(self, user_key: str, address: str | None, *, failed: bool) -> None:
        self._users.settle(user_key, failed=failed)
        if address:
            self._addresses.settle(address, failed=failed)

    def _forget_user(self, user_key: str) -> None:
        self._users.clear(user_key)


class LoginAttempt:
    """One admitted login; ends as a failure, a success, or (an error, a cancelled request)
    neither. As a context manager it always ends, so nothing stays pending."""

    def __init__(self, throttle: LoginThrottle, user_key: str, address: str | None) -> None:
        self._throttle = throttle
        self._user_key = user_key
        self._address = address
        self._open = True

    def failed(self) -> None:
        self._end(failed=True)

    def succeeded(self) -> None:
        """A right password forgets the account's failures (not the address's)."""
        self._end(failed=False)
        self._throttle._forget_user(self._user_key)

    def __enter__(self) -> LoginAttempt:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._open:
            self._end(failed=False)

    def _end(self, *, failed: bool) -> None:
        if self._open:
            self._open = False
            self._throttle._settle(self._user_key, self._address, failed=failed)


class MissLimit:
    """Image URLs naming no stored photo, per client address: someone walking random UUIDs.
    Past the rate every lookup from that address is refused, found or not (so the answers
    tell nothing), until the bucket refills; only the first refusal of each such spell is
    worth an audit row."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._bucket = RateLimit(per_minute, clock)
        self._recorded: OrderedDict[str, None] = OrderedDict()

    def refusal(self, address: str) -> tuple[int, bool] | None:
        """None if the address may look up; else (seconds to wait, whether to record it)."""
        wait = self._bucket.peek(address)
        if wait is None:
            self._recorded.pop(address, None)
            return None
        first = address not in self._recorded
        self._recorded[address] = None
        while len(self._recorded) > MAX_KEYS:
            self._recorded.popitem(last=False)
        return wait, first

    def missed(self, address: str) -> None:
        self._bucket.take(address)
