"""The Redis layer (L2): results shared by every instance that uses the same Redis and prefix.

* A value is ``[expires, scope, result]`` as compact JSON (orjson): ``expires`` in the cache
  clock's milliseconds, so every instance agrees when it goes stale; Redis drops it by then too
  (``SET ... PX``).
* Lookups are one ``MGET`` (a shared tool asks for its shared and its caller's key at once).
* A failing or slow Redis (``timeout``) is skipped for :data:`RETRY_SECONDS`: the call goes to
  its server as if nothing were cached, and the failure is logged at most once a minute. The
  cache is an optimisation: it never fails a call.
* ``clear`` deletes the matching keys (``SCAN`` + ``UNLINK``) and publishes the prefix on
  ``<prefix>clear``; every other instance listening drops its in-memory entries under that
  prefix. Pub/sub may miss a message while a listener reconnects, so a listener that had lost
  its connection empties its instance's memory layer when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from catalyst_mcp.aio import cancel_and_wait
from catalyst_mcp.errors import StorageError

__all__ = ["RETRY_SECONDS", "RedisLayer", "escape_glob"]

log = logging.getLogger("catalyst.cache")

RETRY_SECONDS = 5.0  # a failed Redis is left alone this long
WARN_SECONDS = 60.0  # at most one warning per minute
SCAN_BATCH = 1000
LISTEN_BACKOFF = (0.5, 30.0)  # first and longest wait before the listener reconnects
FAILURES = (RedisError, OSError, TimeoutError)


def escape_glob(text: str) -> str:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def location(url: str) -> str:
    """``url`` without credentials or query, for logs and statistics."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "Redis"
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


class RedisLayer:
    def __init__(
        self,
        url: str,
        prefix: str,
        timeout: float,
        *,
        on_clear: Callable[[str], None] | None = None,
    ) -> None:
        self.prefix = prefix
        self.channel = prefix + "clear"
        self.where = location(url)
        self.on_clear = on_clear  # told the key prefix another instance cleared
        self.instance = uuid.uuid4().hex
        self._url = url
        self._timeout = timeout
        # no retries: a lookup that failed is a miss, a write that failed is nothing lost
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._down_until = 0.0
        self._warned = -WARN_SECONDS
        self.errors = 0
        self._listener: asyncio.Task[None] | None = None
        self.listening = False

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        self._down_until = now + RETRY_SECONDS
        if now - self._warned >= WARN_SECONDS:
            self._warned = now
            log.warning(
                "result cache: %s failed at %s (%s); it is skipped for %g s (calls go to "
                "their servers)",
                what,
                self.where,
                type(exc).__name__,
                RETRY_SECONDS,
            )

    # ---- lookups and writes ------------------------------------------------------------------

    async def get(self, keys: Sequence[str]) -> list[bytes | None]:
        """The stored values of ``keys`` (None: not there, or Redis unavailable)."""
        if not self.available:
            return [None] * len(keys)
        try:
            if len(keys) == 1:
                found = [await self._redis.get(self.prefix + keys[0])]
            else:
                found = await self._redis.mget([self.prefix + key for key in keys])
        except FAILURES as exc:
            self._failed("a lookup", exc)
            return [None] * len(keys)
        return [value.encode() if isinstance(value, str) else value for value in found]

    async def put(self, key: str, value: bytes, ttl_ms: int) -> bool:
        """Store ``value`` for ``ttl_ms``; whether it was stored."""
        if not self.available or ttl_ms <= 0:
            return False
        try:
            await self._redis.set(self.prefix + key, value, px=ttl_ms)
        except FAILURES as exc:
            self._failed("a write", exc)
            return False
        return True

    async def clear(self, prefix: str) -> int:
        """Delete every key under ``prefix`` (all: "") and tell the other instances; how many.
        StorageError when Redis cannot be reached (nothing is skipped here: an administrator
        asked)."""
        pattern = escape_glob(self.prefix + prefix) + "*"
        deleted = 0
        try:
            batch: list[bytes] = []
            async for key in self._redis.scan_iter(match=pattern, count=SCAN_BATCH):
                batch.append(key)
                if len(batch) >= SCAN_BATCH:
                    deleted += int(await self._redis.unlink(*batch))
                    batch = []
            if batch:
                deleted += int(await self._redis.unlink(*batch))
            message = orjson.dumps({"instance": self.instance, "prefix": prefix})
            await self._redis.publish(self.channel, message)
        except FAILURES as exc:
            raise StorageError(
                f"the result cache's Redis ({self.where}) could not be cleared: "
                f"{type(exc).__name__}; try again once it answers"
            ) from exc
        return deleted

    async def ping(self) -> bool:
        try:
            await self._redis.ping()
        except FAILURES:
            return False
        return True

    # ---- other instances' clears -------------------------------------------------------------

    def start(self) -> None:
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="result cache: invalidations"
            )

    async def _listen(self) -> None:
        delay, longest = LISTEN_BACKOFF
        lost = False
        while True:
            client: aioredis.Redis = aioredis.Redis.from_url(
                self._url,
                socket_connect_timeout=self._timeout,
                client_name=f"catalyst-cache-{self.instance}",  # (CLIENT LIST shows whose)
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.listening = True
                if lost and self.on_clear is not None:
                    self.on_clear("")  # a clear may have been missed meanwhile
                delay = LISTEN_BACKOFF[0]
                async for message in pubsub.listen():
                    self._heard(message)
            except FAILURES as exc:
                log.debug("result cache: the invalidation listener lost Redis: %r", exc)
            finally:
                self.listening = False
                with contextlib.suppress(*FAILURES):
                    await pubsub.aclose()
                with contextlib.suppress(*FAILURES):
                    await client.aclose()
            lost = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)

    def _heard(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message" or self.on_clear is None:
            return
        try:
            data = orjson.loads(message.get("data") or b"")
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict) or data.get("instance") == self.instance:
            return
        prefix = data.get("prefix")
        if isinstance(prefix, str):
            self.on_clear(prefix)

    async def aclose(self) -> None:
        if self._listener is not None:
            await cancel_and_wait(self._listener)
            self._listener = None
        await self._redis.aclose()
