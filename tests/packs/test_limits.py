"""Per-pack limits: concurrency, rate, time, size."""

from __future__ import annotations

import asyncio

import pytest

from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.limits import Limiter, TokenBucket
from catalyst_mcp.packs.schema import PackLimits


def test_the_bucket_starts_full_and_refills_at_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("catalyst_mcp.packs.limits.time.monotonic", lambda: now[0])
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token takes half a second at 2/s
    now[0] += 0.5
    assert bucket.take() == 0.0
    now[0] += 100  # never more than the burst saved up
    assert [bucket.take() for _ in range(4)][-1] > 0


async def test_a_call_over_the_rate_is_refused_with_retry_after() -> None:
    limiter = Limiter("p", PackLimits(rate_per_second=1, burst=1))
    async with limiter.slot():
        pass
    with pytest.raises(
        PackError, match=r"over its rate limit of 1 calls/s: retry after (0\.9\d|1\.00) s"
    ):
        async with limiter.slot():
            pass


async def test_concurrency_is_capped_and_drain_waits_for_running_calls() -> None:
    limiter = Limiter("p", PackLimits(concurrency=2))
    running = 0
    most = 0
    release = asyncio.Event()

    async def one() -> None:
        nonlocal running, most
        async with limiter.slot():
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1

    tasks = [asyncio.create_task(one()) for _ in range(5)]
    while running < 2:
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert most == 2 and limiter.in_flight == 5
    drained = asyncio.create_task(limiter.drain(10))
    await asyncio.sleep(0)
    assert not drained.done()
    release.set()
    await asyncio.gather(*tasks)
    await drained
    assert most == 2 and limiter.in_flight == 0


async def test_the_time_limit_covers_the_whole_call() -> None:
    limiter = Limiter("p", PackLimits(timeout_seconds=0.05))
    with pytest.raises(PackError, match=r"longer than the pack's limit of 0\.05 s"):
        async with limiter.slot():
            await asyncio.sleep(5)
    assert limiter.in_flight == 0


def test_results_over_the_size_limit_are_refused() -> None:
    limiter = Limiter("p", PackLimits(max_response_bytes=10))
    limiter.check_size(10)
    with pytest.raises(PackError, match="11 bytes, more than the pack's limit of 10: ask for less"):
        limiter.check_size(11)
