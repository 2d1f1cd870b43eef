"""Coarse deadlines and the coarse timeout built on them."""

from __future__ import annotations

import asyncio

import pytest

from catalyst_mcp.deadlines import CoarseTimeout, Deadlines, deadlines


async def test_a_deadline_fires_once_and_a_discarded_one_never() -> None:
    clock = Deadlines(tick=0.01)
    fired: list[str] = []
    clock.add("a", 0.02, lambda: fired.append("a"))
    clock.add("b", 0.02, lambda: fired.append("b"))
    clock.discard("b")
    await asyncio.sleep(0.1)
    assert fired == ["a"]


async def test_coarse_timeout_turns_its_own_cancellation_into_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        async with CoarseTimeout(0.05):
            await asyncio.sleep(5)
    await asyncio.sleep(0)  # the task is not left cancelling
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_coarse_timeout_does_nothing_when_the_body_is_quick() -> None:
    async with CoarseTimeout(0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(deadlines.tick * 3)  # its deadline was discarded: nothing fires later
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def body() -> None:
        async with CoarseTimeout(10):
            await asyncio.sleep(5)

    task = asyncio.create_task(body())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_nested_timeouts_each_raise_for_their_own_deadline() -> None:
    async def inner_fires() -> None:
        async with CoarseTimeout(10), CoarseTimeout(0.05):
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await inner_fires()
    # the inner one fired; the outer one leaves quietly
    async with CoarseTimeout(0.05):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(5)


async def test_coarse_timeout_works_as_a_plain_with_block_too() -> None:
    with pytest.raises(TimeoutError), CoarseTimeout(0.05):
        await asyncio.sleep(5)
    with CoarseTimeout(0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(deadlines.tick * 3)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
