"""Abuse limits kept in memory (one server process per STORAGE_ROOT): failed logins per
username and per client address, and photo uploads per user.

Both answer how many seconds to wait, for a 429 with ``Retry-After``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from allcare.services.errors import TooManyRequests

MAX_KEYS = 100_000  # beyond this the least recently seen keys are forgotten


class FailureThrottle:
    """A key with ``limit`` failures inside ``window_s`` is refused until the oldest of them
    leaves the window (a sliding window: no reset a bot could wait for)."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int | None:
        with self._lock:
            failures = self._recent(key) if key in self._failures else ()
            if len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[0] + self.window_s - self._clock()))

    def failed(self, key: str) -> None:
        with self._lock:
            self._recent(key).append(self._clock())
            self._failures.move_to_end(key)
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

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
    password included, until the window has moved past the oldest failure."""

    def __init__(
        self,
        per_user: int,
        per_address: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = FailureThrottle(per_user, window_s, clock)
        self._addresses = FailureThrottle(per_address, window_s, clock)

    def check(self, username: str, address: str | None) -> None:
        waits = [self._users.retry_after(username[:128])]
        if address:
            waits.append(self._addresses.retry_after(address))
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            raise TooManyRequests(
                f"Too many failed login attempts; retry in {wait} s", retry_after=wait
            )

    def failed(self, username: str, address: str | None) -> None:
        self._users.failed(username[:128])
        if address:
            self._addresses.failed(address)

    def succeeded(self, username: str) -> None:
        """A right password forgets the account's failures (not the address's)."""
        self._users.clear(username[:128])
