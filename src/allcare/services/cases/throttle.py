"""Rate limits: photo uploads per uploader, and image URLs naming no photo per client address.
Each answers how many seconds to wait, for a 429 with ``Retry-After``. Failed logins:
``login_throttle``.

The buckets are kept in memory with SQLite (one server process) and in PostgreSQL with it
(store/shared_limits.py), so that several API replicas enforce one limit, not one each.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from allcare.services.errors import TooManyRequests

MAX_KEYS = 100_000  # beyond this the least recently seen keys are forgotten


class TokenBuckets(Protocol):
    def draw(self, key: str, capacity: float, rate: float, *, take: bool) -> float:
        """The tokens ``key``'s bucket holds now; with ``take`` one is removed if there is."""
        ...


class MemoryBuckets:
    """One process's buckets."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def draw(self, key: str, capacity: float, rate: float, *, take: bool) -> float:
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if not take:
                return tokens
            self._buckets[key] = (tokens - 1.0 if tokens >= 1.0 else tokens, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
            return tokens


class RateLimit:
    """A token bucket per key: ``per_minute`` requests a minute on average, bursts up to the
    same number."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        buckets: TokenBuckets | None = None,
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets = buckets or MemoryBuckets(clock)

    def check(self, key: str) -> None:
        """Counts one request for ``key``; over the rate, a 429 that says when to retry."""
        wait = self.take(key)
        if wait is not None:
            raise TooManyRequests(
                f"Too many photos in a short time; retry in {wait} s", retry_after=wait
            )

    def peek(self, key: str) -> int | None:
        """What ``take`` would answer, without taking."""
        return self._wait(self._buckets.draw(key, self.capacity, self.rate, take=False))

    def take(self, key: str) -> int | None:
        """None when allowed, else the seconds until the next request would be."""
        return self._wait(self._buckets.draw(key, self.capacity, self.rate, take=True))

    def _wait(self, tokens: float) -> int | None:
        return None if tokens >= 1.0 else max(1, math.ceil((1.0 - tokens) / self.rate))


class MissLimit:
    """Image URLs naming no stored photo, per client address: someone walking random UUIDs.
    Past the rate every lookup from that address is refused, found or not (so the answers
    tell nothing), until the bucket refills; only the first refusal of each such spell is
    worth an audit row."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        buckets: TokenBuckets | None = None,
    ) -> None:
        self._bucket = RateLimit(per_minute, clock, buckets)
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
