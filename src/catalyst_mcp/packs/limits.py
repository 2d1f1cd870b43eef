"""The limits a pack author sets on the pack's calls: concurrency, rate, time and size.

* **concurrency**: calls running at once; more wait for a free slot (within the time limit).
* **rate**: a token bucket (``rate_per_second``, ``burst``); a call finding it empty is refused
  at once with the time after which one would be accepted (no queueing behind a rate limit:
  the caller decides whether to wait).
* **time**: the whole call, waiting for a slot included.
* **size**: the JSON text of a result; a larger one becomes a tool error asking for less.
"""

from __future__ import annotations

import asyncio
import math
import time
from types import TracebackType

from catalyst_mcp.deadlines import CoarseTimeout
from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.schema import PackLimits

__all__ = ["Limiter", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self) -> float:
        """Take one token: 0.0 if taken, else the seconds until one will be there."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class Limiter:
    """One pack's limits, applied around each call with :meth:`slot`."""

    def __init__(self, pack: str, limits: PackLimits) -> None:
        self.pack = pack
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.concurrency)
        self._bucket: TokenBucket | None = None
        if limits.rate_per_second is not None:
            burst = limits.burst or max(1, math.ceil(limits.rate_per_second))
            self._bucket = TokenBucket(limits.rate_per_second, burst)
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def slot(self) -> _Slot:
        """Run one call within the limits (rate, concurrency, then time): ``async with``."""
        return _Slot(self)

    def check_size(self, size: int) -> None:
        if size > self.limits.max_response_bytes:
            raise PackError(
                f"the result is {size} bytes, more than the pack's limit of "
                f"{self.limits.max_response_bytes}: ask for less (fewer rows, a narrower query)"
            )

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until no call is running."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return


class _Slot:
    """One call's hold on its pack's limits (a class, not a generator: it is on the hot path)."""

    __slots__ = ("_limiter", "_timeout")

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter
        self._timeout = CoarseTimeout(limiter.limits.timeout_seconds)

    async def __aenter__(self) -> None:
        limiter = self._limiter
        bucket = limiter._bucket
        if bucket is not None:
            wait = bucket.take()
            if wait:
                raise PackError(
                    f"pack '{limiter.pack}' is over its rate limit of "
                    f"{limiter.limits.rate_per_second:g} calls/s: retry after {wait:.2f} s",
                    data={"retryAfterSeconds": round(wait, 3)},
                )
        limiter.in_flight += 1
        limiter._idle.clear()
        self._timeout.enter()
        try:
            await limiter._slots.acquire()
        except BaseException as exc:
            self._exit(type(exc), exc, acquired=False)
            raise

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(kind, exc, acquired=True)

    def _exit(
        self, kind: type[BaseException] | None, exc: BaseException | None, *, acquired: bool
    ) -> None:
        limiter = self._limiter
        if acquired:
            limiter._slots.release()
        limiter.in_flight -= 1
        if not limiter.in_flight:
            limiter._idle.set()
        try:
            self._timeout.exit(kind, exc)
        except TimeoutError as error:
            raise PackError(
                "the call took longer than the pack's limit of "
                f"{limiter.limits.timeout_seconds:g} s"
            ) from error
