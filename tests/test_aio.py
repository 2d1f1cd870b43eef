"""cancel_and_wait: a task that lost its cancellation is cancelled again until it ends."""

from __future__ import annotations

import asyncio

import pytest

from catalyst_mcp.aio import cancel_and_wait


async def test_a_task_that_swallows_its_first_cancellation_still_ends() -> None:
    ignored = 0

    async def stubborn() -> None:
        nonlocal ignored
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if ignored == 2:
                    raise
                ignored += 1  # as asyncio.wait_for on Python 3.11 may do

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, again=0.01), 5)
    assert task.cancelled()
    assert ignored == 2


async def test_what_the_task_raised_is_raised() -> None:
    async def failing() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("cleanup failed")

    task = asyncio.get_running_loop().create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await cancel_and_wait(task)


async def test_a_finished_task_is_left_as_it_is() -> None:
    task = asyncio.get_running_loop().create_task(asyncio.sleep(0, result=7))
    await task
    await cancel_and_wait(task)
    assert task.result() == 7
