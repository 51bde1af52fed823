"""Failed logins, counted per username and per client address in a sliding window.

A refusal says how many seconds to wait, for a 429 with ``Retry-After``. The failures are kept
in memory with SQLite (one server process) and in PostgreSQL with it (store/shared_limits.py),
so that failures on one API replica count on every other. Attempts still being checked are each
process's own: across N replicas a burst of parallel guesses may get N times the limit checked
at once, never more failures than the limit once they are recorded.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

from allcare.services.cases.throttle import MAX_KEYS
from allcare.services.errors import TooManyRequests

PENDING = 0  # "full only with attempts still being checked": wait, do not refuse yet
MAX_WAIT_S = 10.0  # the app's own login timeout: waiting longer helps nobody


class FailureLog(Protocol):
    def recent(self, key: str, window_s: float) -> tuple[int, float]:
        """Failures inside the window, and seconds until the oldest of them leaves it."""
        ...

    def record(self, key: str) -> None: ...

    def clear(self, key: str) -> None: ...


class MemoryFailureLog:
    """One process's failures."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def recent(self, key: str, window_s: float) -> tuple[int, float]:
        if key not in self._failures:
            return 0, 0.0
        failures = self._window(key, window_s)
        if not failures:
            return 0, 0.0
        return len(failures), failures[0] + window_s - self._clock()

    def record(self, key: str) -> None:
        self._failures.setdefault(key, deque()).append(self._clock())
        self._failures.move_to_end(key)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def _window(self, key: str, window_s: float) -> deque[float]:
        failures = self._failures[key]
        horizon = self._clock() - window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures


class FailureThrottle:
    """A key with ``limit`` failures inside ``window_s`` is refused until the oldest of them
    leaves the window (a sliding window: no reset a bot could wait for).

    Attempts still being checked count against the limit until they are settled: a burst of
    parallel guesses is admitted only up to the limit, however long the password check takes.
    """

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        log: FailureLog | None = None,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._log = log or MemoryFailureLog(clock)
        self._pending: Counter[str] = Counter()
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int | None:
        with self._lock:
            return self._retry_after(key)

    def admit(self, key: str) -> int | None:
        """None, with one attempt pending for ``key``; else, without admitting, PENDING (full
        only with attempts still being checked) or the seconds until the oldest failure ages
        out of the window."""
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
            self._log.clear(key)

    def _retry_after(self, key: str) -> int | None:
        failures, oldest_leaves_in = self._log.recent(key, self.window_s)
        if failures + self._pending[key] < self.limit:
            return None
        if failures < self.limit:
            return PENDING
        return max(1, math.ceil(oldest_leaves_in))

    def _record(self, key: str) -> None:
        self._log.record(key)


class LoginThrottle:
    """Failed logins counted per username (guessing one account's password) and per client
    address (trying many accounts). Either over its limit refuses every attempt, a right
    password included, until the window has moved past the oldest failure.

    An attempt counts from the moment it is admitted, before its password is checked. One that
    finds the limit full only with attempts still being checked waits for them (they may yet
    succeed, as when several phones share an account): if they fail it is refused at once,
    without a password check; if they succeed it goes ahead.
    """

    def __init__(
        self,
        per_user: int,
        per_address: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_wait_s: float = MAX_WAIT_S,
        logs: tuple[FailureLog, FailureLog] | None = None,
    ) -> None:
        """``logs``: where the failures per user and per address are kept (memory if None)."""
        users, addresses = logs or (MemoryFailureLog(clock), MemoryFailureLog(clock))
        self._users = FailureThrottle(per_user, window_s, clock, users)
        self._addresses = FailureThrottle(per_address, window_s, clock, addresses)
        self._max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._waiters: list[asyncio.Future[None]] = []

    async def begin(self, username: str, address: str | None) -> LoginAttempt:
        """Admit one attempt (pending on both counts) or raise 429 without admitting it."""
        user_key = username[:128]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait_s
        while True:
            woken: asyncio.Future[None] = loop.create_future()
            wait = self._admit(user_key, address, woken)
            if wait is None:
                return LoginAttempt(self, user_key, address)
            remaining = deadline - loop.time()
            if wait != PENDING or remaining <= 0:
                retry = max(wait, 1)
                raise TooManyRequests(
                    f"Too many failed login attempts; retry in {retry} s", retry_after=retry
                )
            try:
                await asyncio.wait_for(woken, remaining)
            except TimeoutError:
                continue  # the deadline has passed: the next round refuses

    def _admit(self, user_key: str, address: str | None, woken: asyncio.Future[None]) -> int | None:
        """Both counts or neither; a PENDING answer registers ``woken`` for the next settle."""
        with self._lock:
            wait = self._users.admit(user_key)
            if wait is None and address:
                wait = self._addresses.admit(address)
                if wait is not None:
                    self._users.settle(user_key, failed=False)
            if wait == PENDING:
                self._waiters.append(woken)
            return wait

    def _settle(
        self, user_key: str, address: str | None, *, failed: bool, forget_user: bool = False
    ) -> None:
        with self._lock:
            self._users.settle(user_key, failed=failed)
            if address:
                self._addresses.settle(address, failed=failed)
            if forget_user:
                self._users.clear(user_key)
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:  # each looks again (from whichever loop it waits on)
            waiter.get_loop().call_soon_threadsafe(_wake, waiter)


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
        self._end(failed=False, forget_user=True)

    def __enter__(self) -> LoginAttempt:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._open:
            self._end(failed=False)

    def _end(self, *, failed: bool, forget_user: bool = False) -> None:
        if self._open:
            self._open = False
            self._throttle._settle(
                self._user_key, self._address, failed=failed, forget_user=forget_user
            )


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
