"""Rate limits per user, per tool, per server: token buckets checked together.

A :class:`Check` names one bucket (``user:alice``, ``tool:alice:crm__find``, ``server:alice:crm``:
the caller builds the keys) with its rate and burst. :meth:`RateLimiter.acquire` takes one
token from every bucket of a call at once: if any bucket lacks a token, none is charged and
:class:`~catalyst_mcp.errors.RateLimited` is raised with the longest wait among the empty ones
(its message names that limit). A bucket starts full (``burst`` tokens) and refills at
``rate_per_second`` (the idea of :class:`catalyst_mcp.packs.limits.TokenBucket`, made
multi-bucket and atomic).

Two implementations:

* :class:`MemoryLimiter`: in-process, for one gateway instance. Buckets that have refilled to
  full are forgotten (a missing bucket is a full one), so memory follows the active callers.
* :class:`RedisLimiter`: shared by every gateway instance using one Redis. One Lua script
  (``EVALSHA``, loaded on first use) checks and charges all buckets of a call atomically on the
  Redis server's clock, never a gateway's, so limits are exact across instances. A bucket's key
  expires once it would be full again. On Redis Cluster the keys of one call must hash to one
  slot: put a hash tag in them (``{alice}``).

When Redis cannot be reached the call fails with :class:`LimiterUnavailable` (fail closed, the
default), or, with ``fail_open=True``, goes through unlimited while a warning is logged. A
script is never sent twice: after a timeout Redis may have run it, and a retry would charge the
call again.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from catalyst_mcp.errors import CatalystError, RateLimited

__all__ = [
    "Check",
    "LimiterUnavailable",
    "MemoryLimiter",
    "RateLimiter",
    "RedisLimiter",
]

log = logging.getLogger("catalyst.ratelimit")


class LimiterUnavailable(CatalystError):
    """The shared rate-limit store cannot be reached, so the call is refused (fail closed).
    The message is safe for a client; where the store is (never its password) is logged."""


@dataclass(frozen=True, slots=True)
class Check:
    """One bucket a call must take a token from: ``rate_per_second`` tokens come back each
    second, at most ``burst`` are saved up. ``label`` names the limit in messages
    (``user 'alice'``; default: the key)."""

    key: str
    rate_per_second: float
    burst: int
    label: str = ""

    def __post_init__(self) -> None:
        if not (self.rate_per_second > 0 and math.isfinite(self.rate_per_second)):
            raise ValueError(f"rate limit {self.key!r}: rate_per_second must be > 0")
        if self.burst < 1:
            raise ValueError(f"rate limit {self.key!r}: burst must be at least 1")

    def refused(self, wait: float) -> RateLimited:
        """The error for a call this bucket refuses, ``wait`` seconds before a token is back."""
        label = self.label or f"'{self.key}'"
        return RateLimited(
            f"rate limit for {label} exceeded: {_rate(self.rate_per_second)}, burst "
            f"{self.burst}; retry after {math.ceil(wait * 10) / 10:g} s",
            wait,
        )


def _rate(per_second: float) -> str:
    if per_second >= 1:
        return f"{per_second:g}/s"
    if per_second * 60 >= 1:
        return f"{per_second * 60:g}/min"
    return f"{per_second * 3600:g}/h"


def _distinct(checks: Sequence[Check]) -> None:
    if len(checks) > 1 and len({c.key for c in checks}) != len(checks):
        raise ValueError("a call names the same rate-limit bucket twice")


class RateLimiter(ABC):
    """Takes one token from each bucket of a call, all or none."""

    @abstractmethod
    async def acquire(self, checks: Sequence[Check]) -> None:
        """Charge every bucket in ``checks`` one token, or raise :class:`RateLimited` (nothing
        charged) naming the limit with the longest wait."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the limiter holds (connections, buckets)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class MemoryLimiter(RateLimiter):
    """Buckets in this process. ``clock`` (seconds, monotonic) can be injected for tests.

    Every ``sweep_seconds``, or when the number of buckets has doubled since the last sweep,
    buckets that are full again are dropped: memory holds only callers active lately.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sweep_seconds: float = 60.0
    ) -> None:
        self._clock = clock
        self._sweep_seconds = sweep_seconds
        # key -> (tokens left, when, when it will be full again)
        self._buckets: dict[str, tuple[float, float, float]] = {}
        self._swept = clock()
        self._high_water = 1024

    def __len__(self) -> int:
        return len(self._buckets)

    async def acquire(self, checks: Sequence[Check]) -> None:
        self.take(checks)

    async def aclose(self) -> None:
        self._buckets.clear()

    def take(self, checks: Sequence[Check]) -> None:
        """:meth:`acquire` without awaiting (all of it happens in one step of the loop)."""
        _distinct(checks)
        now = self._clock()
        buckets = self._buckets
        levels = []
        worst: Check | None = None
        worst_wait = 0.0
        for check in checks:
            state = buckets.get(check.key)
            level = float(check.burst)
            if state is not None:
                tokens, stamp, _ = state
                level = min(level, tokens + max(0.0, now - stamp) * check.rate_per_second)
            if level < 1.0:
                wait = (1.0 - level) / check.rate_per_second
                if wait > worst_wait:
                    worst, worst_wait = check, wait
            levels.append(level)
        if worst is not None:
            raise worst.refused(worst_wait)
        for check, level in zip(checks, levels, strict=True):
            left = level - 1.0
            buckets[check.key] = (left, now, now + (check.burst - left) / check.rate_per_second)
        if now - self._swept >= self._sweep_seconds or len(buckets) >= self._high_water:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._buckets = {k: v for k, v in self._buckets.items() if v[2] > now}
        self._swept = now
        self._high_water = max(1024, 2 * len(self._buckets))


# KEYS[i] is a bucket; ARGV[2i-1] and ARGV[2i] its rate per second and burst. A bucket is a hash
# {t = tokens left, s = when, on the server's clock}; a missing bucket is full. Returns {0, ''}
# when every bucket had a token (each is charged one), else {i, wait}: bucket i needs the
# longest wait (seconds, a string: Lua numbers would reach the client as integers), nothing is
# charged.
SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local levels = {}
local worst, worst_wait = 0, 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local level = burst
  local state = redis.call('HMGET', key, 't', 's')
  if state[1] and state[2] then
    local elapsed = math.max(0, now - tonumber(state[2]))
    level = math.min(burst, tonumber(state[1]) + elapsed * rate)
  end
  if level < 1 then
    local wait = (1 - level) / rate
    if wait > worst_wait then worst, worst_wait = i, wait end
  end
  levels[i] = level
end
if worst > 0 then return {worst, string.format('%.6f', worst_wait)} end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local left = levels[i] - 1
  redis.call('HSET', key, 't', string.format('%.17g', left), 's', string.format('%.6f', now))
  redis.call('PEXPIRE', key, string.format('%d', math.ceil((burst - left) / rate * 1000) + 1000))
end
return {0, ''}
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()


class RedisLimiter(RateLimiter):
    """Buckets in Redis, shared by every gateway instance using the same ``url`` and
    ``prefix`` (prepended to every key). ``timeout``: seconds to connect and to answer.
    ``fail_open``: when Redis fails, let calls through (logged) instead of refusing them."""

    def __init__(
        self,
        url: str,
        prefix: str = "catalyst:ratelimit:",
        *,
        fail_open: bool = False,
        timeout: float = 1.0,
    ) -> None:
        self.prefix = prefix
        self.fail_open = fail_open
        self.where = _location(url)
        # Its own connection pool, and no retries: a script that timed out (or whose
        # connection broke) after Redis received it may well have run, and running it again
        # would charge the call twice. A connection Redis dropped while idle is no reason
        # for one: the pool checks a connection before handing it out and reconnects.
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            **_checked_pool(),
        )
        self._warned = -math.inf

    async def acquire(self, checks: Sequence[Check]) -> None:
        if not checks:
            return
        _distinct(checks)
        keys = [self.prefix + c.key for c in checks]
        args: list[Any] = []
        for check in checks:
            args += (repr(float(check.rate_per_second)), str(check.burst))
        try:
            try:
                found = await self._redis.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
            except NoScriptError:
                found = await self._redis.eval(SCRIPT, len(keys), *keys, *args)
        except RedisError as exc:
            self._failed(exc)
            return
        index, wait = int(found[0]), found[1]
        if index:
            raise checks[index - 1].refused(float(wait))

    def _failed(self, exc: RedisError) -> None:
        if self.fail_open:
            now = time.monotonic()
            if now - self._warned >= 10.0:  # at most one warning every 10 s
                self._warned = now
                log.warning(
                    "rate limits are not enforced: %s failed (%s); calls go through (fail_open)",
                    self.where,
                    type(exc).__name__,
                )
            return
        log.error("rate limits cannot be checked: %s failed: %s", self.where, type(exc).__name__)
        raise LimiterUnavailable(
            "rate limits cannot be checked right now (the rate-limit store is unavailable), "
            "so the call was refused; try again later"
        ) from exc

    async def ping(self) -> None:
        """Check that Redis answers (for /ready); raises RedisError if it does not."""
        await self._redis.ping()

    async def aclose(self) -> None:
        await self._redis.aclose()


def _checked_pool() -> dict[str, Any]:
    """Options making the pool check a connection before handing it out (a connection Redis
    closed is then replaced, not used): recent redis-py versions skip that check while their
    maintenance notifications are on, as they are by default ("auto"). They only matter to
    Redis Enterprise and Redis Cloud, and could also stretch ``timeout`` during maintenance."""
    try:
        from redis.maint_notifications import MaintNotificationsConfig
    except ImportError:  # older redis-py: the pool always checks
        return {}
    return {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}


def _location(url: str) -> str:
    """``url`` without credentials or query (for logs): ``redis://host:6379/0``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "Redis"
    if parts.scheme == "unix":
        return f"Redis at unix:{parts.path}"
    return f"Redis at {parts.scheme}://{host}{port}{parts.path}"
