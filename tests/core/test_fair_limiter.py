"""The fair limiter directly: free slots go round the waiting keys, one turn each."""

from __future__ import annotations

import asyncio

import pytest

from allcare.core.fair_limiter import FairLimiter


def test_turns_go_round_the_keys_not_first_come_first_served() -> None:
    async def run() -> list[str]:
        limiter = FairLimiter(1)
        served: list[str] = []
        await limiter.acquire("holder")

        async def one(key: str) -> None:
            async with limiter.slot(key):
                served.append(key)

        tasks = [asyncio.create_task(one("flood")) for _ in range(4)]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(one("gp1")), asyncio.create_task(one("gp2"))]
        await asyncio.sleep(0)
        limiter.release()
        await asyncio.gather(*tasks)
        return served

    assert asyncio.run(run()) == ["flood", "gp1", "gp2", "flood", "flood", "flood"]


def test_a_cancelled_waiter_gives_up_its_place_and_no_slot_is_lost() -> None:
    async def run() -> None:
        limiter = FairLimiter(2)
        await limiter.acquire("a")
        await limiter.acquire("b")
        gone = asyncio.create_task(limiter.acquire("c"))
        stays = asyncio.create_task(limiter.acquire("d"))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        limiter.release()
        await asyncio.wait_for(stays, 1)  # "c" is skipped, "d" gets the slot
        limiter.release()
        limiter.release()
        for key in ("e", "f"):  # both slots are free again
            await asyncio.wait_for(limiter.acquire(key), 1)

    asyncio.run(run())


def test_a_limiter_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        FairLimiter(0)
