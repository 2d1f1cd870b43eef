"""One instance's line to the others: a Redis client, and one pub/sub connection.

Every instance has an id (random, made at start) and listens on two channels: its own
(``{prefix}:i:<id>``: messages for it alone) and the deployment's (``{prefix}:all``: messages for
every instance; an instance ignores its own). A message is a JSON object whose ``k`` names its
kind; a handler registered for that kind runs for each (in order, on the reading task: a handler
that needs to wait starts a task of its own).

On top of that, a request/answer pair (:meth:`Bus.call`): the asking instance publishes the
request on the other's channel with a correlation id; the other answers with :meth:`Bus.reply`,
and may send messages on the way (:meth:`Bus.emit`). An instance that is gone is noticed at
once when nobody receives the request (``PUBLISH`` counts the receivers), and while waiting by
asking Redis every second whether it still listens (``PUBSUB NUMSUB``).

Redis keys of one deployment share one hash tag (``{prefix}``), so its Lua scripts work on a Redis
Cluster too (all in one slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from catalyst_mcp.aio import cancel_and_wait
from catalyst_mcp.cluster.config import RedisSettings
from catalyst_mcp.errors import (
    CatalystError,
    Forbidden,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    MissingCapability,
    SharedStateUnavailable,
    UpstreamError,
)
from catalyst_mcp.security.ratelimit import _checked_pool, _location

__all__ = ["Bus", "Handler", "InstanceGone"]

log = logging.getLogger("catalyst.cluster")

Handler = Callable[[dict[str, Any]], None]
ALIVE_CHECK_SECONDS = 1.0  # while waiting for an answer: how often to check the other listens
RECONNECT_SECONDS = (0.05, 0.2, 0.5, 1.0, 2.0)
# the error classes another instance's answer is raised as here, by JSON-RPC code
RELAYED: dict[int, type[CatalystError]] = {
    cls.code: cls
    for cls in (InvalidRequest, MethodNotFound, InvalidParams, MissingCapability, Forbidden)
}


class InstanceGone(CatalystError):
    """The instance a request was for no longer listens (stopped, or killed)."""


class Bus:
    """Redis and pub/sub for one gateway instance (``instance``: its id, else a new one)."""

    def __init__(self, settings: RedisSettings, instance: str | None = None) -> None:
        assert settings.url is not None
        self.instance = instance or secrets.token_hex(6)
        self.tag = "{" + settings.prefix + "}:"  # every key and channel starts with it
        self.where = _location(settings.url)
        self.timeout = settings.timeout_seconds
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            settings.url,
            socket_timeout=settings.timeout_seconds,
            socket_connect_timeout=settings.timeout_seconds,
            retry=Retry(NoBackoff(), 0),  # a script that may have run is never sent twice
            client_name=f"catalyst-{self.instance}",  # CLIENT LIST names each instance
            **_checked_pool(),
        )
        # the pub/sub connection waits for messages as long as it takes: no read timeout
        self._listener: aioredis.Redis = aioredis.Redis.from_url(
            settings.url,
            socket_connect_timeout=settings.timeout_seconds,
            client_name=f"catalyst-{self.instance}-pubsub",
        )
        self.own_channel = self.channel(self.instance)
        self.all_channel = self.tag + "all"
        self.handlers: dict[str, Handler] = {}
        # run after the pub/sub connection was lost and made again (messages may be missed)
        self.on_reconnect: list[Callable[[], None]] = []
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.handlers["reply"] = self._on_reply
        self.handlers["emit"] = self._on_emit

    def channel(self, instance: str) -> str:
        """The channel of one instance."""
        return f"{self.tag}i:{instance}"

    def key(self, *parts: str) -> str:
        """A key of this deployment: ``{prefix}:part:part``."""
        return self.tag + ":".join(parts)

    # ---- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on this instance's channel and the deployment's (raises
        SharedStateUnavailable when Redis cannot be reached)."""
        try:
            await self.redis.ping()
        except RedisError as exc:
            raise SharedStateUnavailable(
                f"cannot reach {self.where} (redis.url): {type(exc).__name__}"
            ) from exc
        self._reader = asyncio.get_running_loop().create_task(self._read(), name="cluster-bus")
        try:
            async with asyncio.timeout(self.timeout * 2):
                await self._subscribed.wait()
        except TimeoutError as exc:
            await self.stop()
            raise SharedStateUnavailable(
                f"cannot listen for other instances' messages on {self.where}"
            ) from exc

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await cancel_and_wait(reader)
        for task in list(self._tasks):
            task.cancel()
        for call in self._calls.values():
            if not call.future.done():
                call.future.set_exception(InstanceGone("this instance is stopping"))
        self._calls.clear()
        await self._listener.aclose()
        await self.redis.aclose()

    def unavailable(self, exc: BaseException) -> SharedStateUnavailable:
        """The error a client gets when Redis failed (the cause is logged, never shown)."""
        log.error("shared state: %s failed: %s", self.where, type(exc).__name__)
        return SharedStateUnavailable(
            "the gateway's shared state (Redis) cannot be reached right now; try again later"
        )

    async def _read(self) -> None:
        attempt = 0
        first = True
        while True:
            pubsub: PubSub = self._listener.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.own_channel, self.all_channel)
                self._subscribed.set()
                if not first:
                    log.info("shared state: listening again on %s", self.where)
                    for hook in self.on_reconnect:
                        hook()
                first, attempt = False, 0
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None and message.get("type") == "message":
                        self._dispatch(message["data"])
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except (RedisError, OSError) as exc:
                delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                attempt += 1
                log.warning(
                    "shared state: lost the pub/sub connection to %s (%s); again in %.2fs",
                    self.where,
                    type(exc).__name__,
                    delay,
                )
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(delay)

    def _dispatch(self, data: bytes) -> None:
        try:
            message = orjson.loads(data)
            handler = self.handlers.get(message["k"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("shared state: ignored a malformed message")
            return
        if handler is None or message.get("from") == self.instance:
            return  # not for us, or our own broadcast
        try:
            handler(message)
        except Exception:  # one bad message must not stop the reader
            log.exception("shared state: handling a %r message failed", message.get("k"))

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run ``work`` in a task of its own (kept until it ends; failures logged)."""

        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("shared state: a background step failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- sending -----------------------------------------------------------------------------

    async def publish(self, channel: str, message: dict[str, Any]) -> int:
        """Send ``message`` on ``channel``; how many listeners received it."""
        try:
            received: int = await self.redis.publish(
                channel, orjson.dumps({**message, "from": self.instance})
            )
        except RedisError as exc:
            raise self.unavailable(exc) from exc
        return received

    async def broadcast(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every other instance."""
        await self.publish(self.all_channel, message)

    async def send(self, instance: str, message: dict[str, Any]) -> bool:
        """Send ``message`` to one instance; False if it no longer listens."""
        return await self.publish(self.channel(instance), message) > 0

    async def listening(self, instance: str) -> bool:
        """Whether ``instance`` still listens on its channel."""
        channel = self.channel(instance)
        try:
            counts = await self.redis.pubsub_numsub(channel)
        except RedisError as exc:
            raise self.unavailable(exc) from exc
        return bool(counts and counts[0][1])

    async def call(
        self,
        instance: str,
        message: dict[str, Any],
        timeout: float,
        on_emit: Callable[[Any], Awaitable[None]],
    ) -> Any:
        """Send a request to ``instance`` and wait for its :meth:`reply` (at most ``timeout``
        seconds). ``on_emit`` runs for each message it sends on the way. Raises InstanceGone
        when it does not listen (or stops listening), TimeoutError when it takes too long, or
        the CatalystError the other side answered with."""
        number = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[number] = _Call(future, on_emit)
        try:
            if not await self.send(instance, {**message, "id": number}):
                raise InstanceGone(f"instance {instance} is gone")
            async with asyncio.timeout(timeout):
                while True:
                    done, _ = await asyncio.wait({future}, timeout=ALIVE_CHECK_SECONDS)
                    if done:
                        return future.result()
                    if not await self.listening(instance):
                        raise InstanceGone(f"instance {instance} is gone")
        finally:
            self._calls.pop(number, None)

    async def reply(
        self,
        request: dict[str, Any],
        result: Any = None,
        error: CatalystError | None = None,
    ) -> None:
        """Answer a request :meth:`call` sent (``error``: fail it with that error)."""
        answer: dict[str, Any] = {"k": "reply", "id": request["id"]}
        if error is None:
            answer["ok"] = result
        else:
            answer["err"] = {**error.to_jsonrpc(), "status": error.http_status}
            if isinstance(error, UpstreamError):  # a tool error to the caller, not a failure
                answer["err"]["server"] = error.server
        await self.send(request["from"], answer)

    async def emit(self, request: dict[str, Any], data: Any) -> None:
        """Send the asking instance a message on the way (its ``on_emit`` gets ``data``)."""
        await self.send(request["from"], {"k": "emit", "id": request["id"], "m": data})

    def _on_reply(self, message: dict[str, Any]) -> None:
        waiting = self._calls.get(message.get("id"))  # type: ignore[arg-type]
        if waiting is None or waiting.future.done():
            return
        future = waiting.future
        error = message.get("err")
        if isinstance(error, dict):
            future.set_exception(relayed(error))
        else:
            future.set_result(message.get("ok"))

    def _on_emit(self, message: dict[str, Any]) -> None:
        waiting = self._calls.get(message.get("id"))  # type: ignore[arg-type]
        if waiting is not None:
            self.spawn(waiting.emit(message.get("m")))


class _Call:
    """A request :meth:`Bus.call` waits on; what the other side emits meanwhile is passed on
    in the order it came (each waits for the one before it)."""

    __slots__ = ("_lock", "future", "on_emit")

    def __init__(
        self, future: asyncio.Future[Any], on_emit: Callable[[Any], Awaitable[None]]
    ) -> None:
        self.future = future
        self.on_emit = on_emit
        self._lock = asyncio.Lock()

    async def emit(self, data: Any) -> None:
        async with self._lock:  # tasks start in the order made, and the lock is fair
            await self.on_emit(data)


def relayed(error: dict[str, Any]) -> CatalystError:
    """An error another instance answered with, as one raised here (same code and message)."""
    message = str(error.get("message") or "another instance failed")
    server = error.get("server")
    code = error.get("code")
    exc: CatalystError
    if isinstance(server, str):
        exc = UpstreamError(server, message)
    else:
        exc = RELAYED.get(code if isinstance(code, int) else 0, CatalystError)(message)
    exc.data = error.get("data")
    if isinstance(code, int):
        exc.code = code
    status = error.get("status")
    if isinstance(status, int):
        exc.http_status = status
    return exc
