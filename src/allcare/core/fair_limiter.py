"""A concurrency limit that serves waiting keys in turn.

Plain FIFO lets one client with many requests in the queue (a burst of bogus logins, a stream of
expensive photos) delay everybody behind it. Here each key (a client address, a user) has its
own FIFO and the free slots go to the keys in round-robin order, so a newcomer waits for at most
one turn of every other active key, however much one of them has queued.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairLimiter:
    """``slots`` holders at a time; used from one event loop only."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a limiter needs at least one slot")
        self._free = slots
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    async def acquire(self, key: str) -> None:
        """Wait for a slot; the caller must ``release()`` it exactly once afterwards."""
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted while being cancelled: hand the slot on
            else:
                self._forget(key, waiter)
            raise

    def release(self) -> None:
        while self._waiting:
            key, queue = next(iter(self._waiting.items()))
            waiter = queue.popleft()
            del self._waiting[key]
            if queue:
                self._waiting[key] = queue  # to the back: every other key goes first
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        await self.acquire(key)
        try:
            yield
        finally:
            self.release()

    def _forget(self, key: str, waiter: asyncio.Future[None]) -> None:
        queue = self._waiting.get(key)
        if queue is None:
            return
        try:
            queue.remove(waiter)
        except ValueError:
            return
        if not queue:
            del self._waiting[key]
