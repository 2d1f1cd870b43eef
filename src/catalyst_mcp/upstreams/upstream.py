"""One configured upstream MCP server: connect, supervise, cache its lists, relay calls.

The connection is long-lived and shared by every client (no per-call handshake). A supervisor
task reconnects with exponential backoff when the process dies or the connection fails; while it is
down, calls fail fast with a clear error and ``/ready`` says why. A server that stops answering
(no answer to a probe after a call timed out, or to the periodic probe) is restarted at once
(:mod:`catalyst_mcp.upstreams.liveness`). A circuit breaker stops hammering a server whose calls
keep failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import (
    CatalystError,
    MethodNotFound,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from catalyst_mcp.protocol.headers import encode_header_value, header_text, param_headers
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.protocol.versions import LOG_LEVEL_KEY, log_level_allows
from catalyst_mcp.providers import LIST_KINDS, ListKind, Provider
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams.base import UpstreamTransport
from catalyst_mcp.upstreams.breaker import CircuitBreaker
from catalyst_mcp.upstreams.http import SseTransport, StreamableHttpTransport
from catalyst_mcp.upstreams.lists import CAPABILITY_OF, CHANGED, fetch_list
from catalyst_mcp.upstreams.liveness import Liveness
from catalyst_mcp.upstreams.serverlog import ServerLog
from catalyst_mcp.upstreams.session import UpstreamSession, open_session
from catalyst_mcp.upstreams.stdio import StdioTransport
from catalyst_mcp.upstreams.subscriptions import Subscriptions
from catalyst_mcp.upstreams.websocket import WebSocketTransport

if TYPE_CHECKING:
    from catalyst_mcp.trust.pinning import ToolPins

__all__ = ["Upstream"]

log = logging.getLogger("catalyst.upstream")

DRAIN_POLL_SECONDS = 0.05
CLIENT_REQUESTS = frozenset({"sampling/createMessage", "elicitation/create", "roots/list"})


def build_transport(name: str, config: ServerConfig) -> UpstreamTransport:
    if config.kind == "stdio":
        assert config.command is not None
        return StdioTransport(
            name,
            config.command,
            list(config.args),
            dict(config.env),
            config.cwd,
            sandbox=config.sandbox,
        )
    assert config.url is not None
    if config.kind == "sse":
        return SseTransport(name, config.url, dict(config.headers))
    if config.kind == "websocket":
        return WebSocketTransport(
            name, config.url, dict(config.headers), config.connect_timeout_seconds
        )
    return StreamableHttpTransport(name, config.url, dict(config.headers))


class Upstream(Provider):
    """One server process or connection. ``log`` keeps its stderr lines (labelled
    ``instance``: ``shared``, or whose process it is when the server runs one per user or
    session)."""

    def __init__(
        self,
        name: str,
        namespace: str,
        config: ServerConfig,
        call_timeout: float,
        *,
        log: ServerLog | None = None,
        instance: str = "shared",
    ) -> None:
        super().__init__(name, namespace)
        self.config = config
        self.log = log
        self.instance = instance
        self.call_timeout = config.timeout_seconds or call_timeout
        self.session: UpstreamSession | None = None
        self.status = "starting"
        self.last_error: str | None = None
        # the latest failure and when (time.time()): kept after recovery, for health reports
        self.last_failure: tuple[str, float] | None = None
        self.connected_at: float | None = None
        self.restarts = 0
        self._retry_at: float | None = None
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_reset_seconds)
        self._lists: dict[ListKind, list[dict[str, Any]]] = {k: [] for k in LIST_KINDS}
        self._expires: dict[ListKind, float] = {}
        self._param_headers: dict[str, list[tuple[str, str]]] = {}
        self._inflight: dict[int, CallContext] = {}
        self._tokens = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._transport: UpstreamTransport | None = None
        self._lost = asyncio.Event()
        self._stopping = False
        self._settled = asyncio.Event()
        self._refreshing: dict[ListKind, asyncio.Task[None]] = {}
        self._serial = asyncio.Lock() if config.serialize_calls else None
        self._listen_task: asyncio.Task[None] | None = None
        self.subscriptions = Subscriptions(
            name, config, self.call_timeout, lambda: self.session, self._notification
        )
        self.liveness = Liveness(
            name, config.ping_interval_seconds, config.ping_timeout_seconds, self._restart
        )
        self._watch_task: asyncio.Task[None] | None = None
        self._restart_now = False  # the next reconnect follows a deliberate kill: no backoff
        self._attempt_waiters: list[asyncio.Future[None]] = []
        self.pins: ToolPins | None = None  # see use_pins

    def use_pins(self, pins: ToolPins) -> None:
        """Review every tools list that arrives against its pinned definitions: tools that
        changed since they were approved are held back (:mod:`catalyst_mcp.trust.pinning`)."""
        self.pins = pins
        pins.on_release = self._serve_tools

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"upstream-{self.name}")

    async def wait_settled(self, timeout: float) -> None:
        """Wait until the first connection attempt has succeeded or failed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._settled.wait()

    async def _supervise(self) -> None:
        delay = self.config.restart_initial_seconds
        while not self._stopping:
            self._lost.clear()
            transport = build_transport(self.name, self.config)
            if isinstance(transport, StdioTransport):
                transport.on_stderr = self._stderr
            transport.on_closed = functools.partial(self._connection_lost, transport=transport)
            self._transport = transport
            session: UpstreamSession | None = None
            try:
                session = await open_session(
                    transport,
                    era=self.config.era,
                    handshake_timeout=self.config.connect_timeout_seconds,
                )
                session.on_notification = self._notification
                session.on_server_request = self._unrelated_request
                self.session = session
                await self._fetch_all(session)
                self.status = "ready"
                self.last_error = None
                self.connected_at = time.time()
                self.breaker.reset()
                delay = self.config.restart_initial_seconds
                self._settled.set()
                self._attempt_over()
                self.on_change(self, set(LIST_KINDS))
                if session.era == "modern":
                    self._listen_task = asyncio.create_task(self.subscriptions.listen(session))
                if self.config.ping_interval_seconds > 0:
                    watch = self.liveness.watch(session, self._busy)
                    self._watch_task = asyncio.create_task(watch)
                await self.subscriptions.resubscribe()
                await self._lost.wait()
            except asyncio.CancelledError:
                raise
            except (CatalystError, OSError, TimeoutError) as exc:
                self._failed(_describe(exc))
                log.warning("%s: %s", self.name, self.last_error)
            except Exception as exc:
                self._failed(f"internal error: {type(exc).__name__}")
                log.exception("%s: unexpected failure", self.name)
            finally:
                self.session = None
                for task in (self._listen_task, self._watch_task):
                    if task is not None:
                        task.cancel()
                self._listen_task = self._watch_task = None
                with contextlib.suppress(Exception):
                    await (session.close() if session is not None else transport.close())
            if self._stopped():
                break
            self.status = "failed"
            self._settled.set()
            self.restarts += 1
            if self._restart_now:
                # killed for not answering: start again at once, and keep the lists (the same
                # server is back in a moment; calls wait for it meanwhile)
                self._restart_now = False
                self._retry_at = time.monotonic()
                log.info("%s: restarting", self.name)
            else:
                had_items = any(self._lists.values())
                self._lists = {k: [] for k in LIST_KINDS}
                if had_items:
                    self.on_change(self, set(LIST_KINDS))
                log.info("%s: reconnecting in %.1fs", self.name, delay)
                self._retry_at = time.monotonic() + delay
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.restart_max_seconds)
            # the status stays "failed" through the next attempt: "starting" is the first only

    def _stderr(self, line: str, pid: int | None) -> None:
        if self.log is not None:
            self.log.append(line, pid, self.instance)

    def _failed(self, reason: str) -> None:
        """Report a failed connection at once (closing the transport may take seconds)."""
        self._note(reason)
        self.status = "failed"
        self._settled.set()
        self._attempt_over()

    def _note(self, reason: str) -> None:
        self.last_error = reason
        self.last_failure = (reason, time.time())

    def _attempt_over(self) -> None:
        """A connection attempt has ended (ready or failed): wake whoever waits for one."""
        waiters, self._attempt_waiters = self._attempt_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _stopped(self) -> bool:
        return self._stopping

    def _connection_lost(self, reason: str, transport: UpstreamTransport | None = None) -> None:
        if self._stopping or self._lost.is_set():
            return  # stopping, or already on the way out (the first reason is the one to tell)
        if transport is not None and transport is not self._transport:
            return  # news of a connection already replaced
        self._note(reason)
        self._lost.set()

    async def _restart(self, session: UpstreamSession, cause: str) -> None:
        """``session`` stopped answering: kill or drop it, fail its calls in flight, and return
        once the next connection is ready or has failed (within the connect timeout)."""
        if self.session is not session or self._stopping:
            return
        done = "it was restarted" if self.config.kind == "stdio" else "it is being reconnected"
        self._note(f"{cause}; {done}")
        self.status = "failed"  # at once: closing the old connection may take a moment
        log.warning("%s", self.last_error)
        self.breaker.failure()
        waiter = asyncio.get_running_loop().create_future()
        self._attempt_waiters.append(waiter)
        self._restart_now = True
        session.transport.abort(f"{cause}; {done}, and this call was lost with it: retry it")
        self._lost.set()
        await asyncio.wait({waiter}, timeout=self.config.connect_timeout_seconds + 1)

    async def stop(self) -> None:
        self._stopping = True
        self._lost.set()
        self.liveness.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._transport is not None:
            # The supervisor may have been cancelled half-way through closing it: finish the
            # job, so no child process outlives the gateway (close is idempotent).
            with contextlib.suppress(Exception):
                await self._transport.close()
        for task in self._refreshing.values():
            task.cancel()
        if self.pins is not None:
            self.pins.close()
        self.status = "stopped"

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until no call is running or waiting its turn: before a
        server replaced or removed by a config reload is stopped. It polls, so the call path
        pays nothing for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if not self._busy():
                await asyncio.sleep(0)  # a serialized call handed the lock takes it now
                if not self._busy():
                    return
            await asyncio.sleep(min(DRAIN_POLL_SECONDS, max(0.0, deadline - loop.time())))

    def in_use(self) -> bool:
        """Whether a call is running or waiting its turn."""
        return self._busy()

    def _busy(self) -> bool:
        """A call is running or waiting its turn (no liveness probe then; no drain yet)."""
        return bool(self._inflight) or (self._serial is not None and self._serial.locked())

    # ---- lists -----------------------------------------------------------------------------

    async def _fetch_all(self, session: UpstreamSession) -> None:
        for kind in LIST_KINDS:
            if CAPABILITY_OF[kind] in session.capabilities:
                await self._fetch(session, kind)

    async def _fetch(self, session: UpstreamSession, kind: ListKind) -> None:
        items, ttl = await fetch_list(session, kind, self.config.connect_timeout_seconds)
        if kind == "tools" and self.pins is not None:
            items = await self.pins.review(items)
        self._lists[kind] = items
        if isinstance(ttl, int | float) and ttl > 0:
            self._expires[kind] = time.monotonic() + ttl / 1000
        elif session.era == "modern" and "listChanged" not in session.capabilities.get(
            CAPABILITY_OF[kind], {}
        ):
            self._expires[kind] = time.monotonic()  # no hint, no notifications: ask again
        else:
            self._expires.pop(kind, None)
        if kind == "tools":
            self._param_headers = {
                tool["name"]: headers for tool in items if (headers := param_headers(tool))
            }

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return self._lists[kind]

    def _serve_tools(self, tools: list[dict[str, Any]]) -> None:
        """Serve ``tools`` now (held tools an administrator approved meanwhile)."""
        if self.session is None:
            return  # the next connection lists and reviews them again
        self._lists["tools"] = tools
        self._param_headers = {
            tool["name"]: headers for tool in tools if (headers := param_headers(tool))
        }
        self.on_change(self, {"tools"})

    def withheld(self, kind: ListKind, name: str) -> CatalystError | None:
        pins = self.pins
        return pins.refusal(name) if pins is not None and kind == "tools" else None

    async def refresh(self) -> None:
        session = self.session
        if session is None or not self._expires:
            return
        now = time.monotonic()
        changed: set[ListKind] = set()
        for kind in [k for k, at in self._expires.items() if at <= now]:
            before = self._lists[kind]
            with contextlib.suppress(UpstreamError):
                await self._fetch(session, kind)
            if self._lists[kind] != before:
                changed.add(kind)
        if changed:
            self.on_change(self, changed)

    def _refetch(self, kind: ListKind) -> None:
        running = self._refreshing.get(kind)
        if running is not None and not running.done():
            running.add_done_callback(lambda _: self._refetch(kind))
            return
        self._refreshing[kind] = asyncio.create_task(self._refetch_now(kind))

    async def _refetch_now(self, kind: ListKind) -> None:
        session = self.session
        if session is None:
            return
        try:
            await self._fetch(session, kind)
        except UpstreamError as exc:
            log.warning("%s: could not refresh %s: %s", self.name, kind, exc)
            return
        self.on_change(self, {kind})

    # ---- calls -----------------------------------------------------------------------------

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        if self._serial is None:
            return await self._call(method, params, ctx)
        async with self._serial:  # one at a time: see ServerConfig.serialize_calls
            return await self._call(method, params, ctx)

    async def _call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        if self.liveness.gate is not None:  # suspect or restarting: never send into a dead one
            await self._wait_for_verdict(method)
        session = self.session
        if session is None:
            raise UpstreamUnavailable(self.name, self._unavailable_reason())
        if not self.breaker.allow():
            raise UpstreamUnavailable(
                self.name,
                f"{self.name} is failing repeatedly (circuit open); "
                f"retry in {self.breaker.retry_after():.0f}s",
            )
        token = next(self._tokens)
        params = dict(params)
        params["_meta"] = self._meta(session, ctx, token)
        headers = None
        if method == "tools/call" and session.era == "modern":
            headers = self._headers_for(params)
        self._inflight[token] = ctx
        try:
            result = await session.request(
                method,
                params,
                timeout=self.call_timeout,
                on_related=lambda message: self._related(message, ctx, token),
                headers=headers,
            )
        except UpstreamRejected:
            self.breaker.success()
            raise
        except (UpstreamUnavailable, UpstreamTimeout, UpstreamProtocolError) as exc:
            self.breaker.failure()
            if self.session is session:
                if isinstance(exc, UpstreamTimeout):
                    self.liveness.suspect(session)
                elif isinstance(exc, UpstreamUnavailable) and self.config.kind != "stdio":
                    self._connection_lost(str(exc))
            raise
        finally:
            del self._inflight[token]
        self.breaker.success()
        return result

    async def _wait_for_verdict(self, method: str) -> None:
        """Wait, at most the call's time limit, until the pending liveness verdict or restart
        is over (the call then has its whole time limit for itself)."""
        if not await self.liveness.wait(self.call_timeout):
            why = self.last_error or "a call timed out, and it is being checked"
            raise UpstreamTimeout(
                self.name,
                f"{self.name} could not take {method} within {self.call_timeout:g}s while it "
                f"recovers ({why}); retry shortly",
            )

    def _meta(self, session: UpstreamSession, ctx: CallContext, token: int) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if ctx.progress_token is not None:
            extra["progressToken"] = token
        if session.era == "legacy":
            return extra
        if ctx.log_level is not None:
            extra[LOG_LEVEL_KEY] = ctx.log_level
        return session.meta(extra, _modern_capabilities(ctx.client_capabilities))

    def _headers_for(self, params: dict[str, Any]) -> dict[str, str] | None:
        wanted = self._param_headers.get(params.get("name", ""))
        if not wanted:
            return None
        arguments = params.get("arguments") or {}
        headers = {}
        for header, arg in wanted:
            value = arguments.get(arg)
            if value is None:
                continue
            headers[f"Mcp-Param-{header}"] = encode_header_value(header_text(value))
        return headers

    def _unavailable_reason(self) -> str:
        why = f": {self.last_error}" if self.last_error else ""
        retry = self._retry_at
        when = ""
        if retry is not None and self.status == "failed":
            left = retry - time.monotonic()
            when = f"; retrying in {left:.0f}s" if left >= 0.5 else "; retrying now"
        return f"{self.name} is unavailable ({self.status}){why}{when}"

    # ---- what the server sends ---------------------------------------------------------------

    async def _related(self, message: Message, ctx: CallContext, token: int) -> None:
        """A message the server sent on one call's own response stream."""
        if "id" in message:
            session = self.session
            if session is not None:
                await session.answer(message, lambda m: self._ask(ctx, m))
            return
        await self._notification(message, ctx)

    async def _notification(self, message: Message, ctx: CallContext | None = None) -> None:
        method = message.get("method")
        params = message.get("params") or {}
        if method == "notifications/progress":
            target = self._inflight.get(params.get("progressToken"))  # type: ignore[arg-type]
            if target is not None and target.progress_token is not None:
                await target.emit(
                    {**message, "params": {**params, "progressToken": target.progress_token}}
                )
        elif method == "notifications/message":
            target = ctx or self._only_caller()
            if target is not None and log_level_allows(target.log_level, params.get("level")):
                await target.emit(message)
            else:
                log.info("%s[log]: %s", self.name, str(params.get("data"))[:500])
        elif method in CHANGED:
            for kind in CHANGED[method]:
                self._refetch(kind)
        elif method == "notifications/resources/updated":
            uri = params.get("uri")
            if isinstance(uri, str):
                await self.on_resource_updated(self, uri)

    def _only_caller(self) -> CallContext | None:
        """A message with no request attached: attribute it when only one call is in flight.

        Only on transports that cannot link messages to requests (stdio, legacy SSE). On
        Streamable HTTP, unrelated messages arrive on the GET stream and belong to no caller:
        routing them to whoever is calling would show one client another's requests or logs.
        """
        session = self.session
        linked = session is not None and isinstance(session.transport, StreamableHttpTransport)
        if linked or len(self._inflight) != 1:
            return None
        return next(iter(self._inflight.values()))

    async def _unrelated_request(self, message: Message) -> dict[str, Any]:
        ctx = self._only_caller()
        if ctx is not None:
            return await self._ask(ctx, message)
        method = message.get("method")
        if method == "roots/list":
            return {"roots": []}
        if self._inflight:
            raise MethodNotFound(
                f"{method} arrived while several calls were in flight and this transport cannot "
                f"say which one asked; set `serialize_calls: true` for {self.name}"
            )
        raise MethodNotFound(f"{method} is not available outside a client request")

    async def _ask(self, ctx: CallContext, message: Message) -> dict[str, Any]:
        """Forward a server→client request to the calling client, in its era's way."""
        method = message.get("method", "")
        if method not in CLIENT_REQUESTS:
            raise MethodNotFound(f"unknown method {method}")
        capability = method.split("/")[0]
        if method == "roots/list" and not ctx.can("roots"):
            return {"roots": []}
        if ctx.ask is None or (ctx.era == "legacy" and not ctx.can(capability)):
            raise MethodNotFound(f"the calling client does not support {capability}")
        # Modern clients: the input bridge refuses an undeclared capability with -32021.
        return await ctx.ask(method, message.get("params") or {})

    async def subscribe(self, uri: str) -> None:
        await self.subscriptions.subscribe(uri)

    async def unsubscribe(self, uri: str) -> None:
        await self.subscriptions.unsubscribe(uri)

    # ---- reports -----------------------------------------------------------------------------

    @property
    def capabilities(self) -> dict[str, Any]:
        session = self.session
        return session.capabilities if session is not None else {}

    @property
    def instructions(self) -> str | None:
        session = self.session
        return session.instructions if session is not None else None

    @property
    def may_ask(self) -> bool:
        session = self.session
        return session is not None and session.era == "legacy"

    def health(self) -> dict[str, Any]:
        session = self.session
        report: dict[str, Any] = {
            "name": self.name,
            "kind": "server",
            "status": self.status,
            "transport": self.config.kind,
            "circuit": self.breaker.state,
            "restarts": self.restarts,
            "tools": len(self._lists["tools"]),
            "resources": len(self._lists["resources"]),
            "prompts": len(self._lists["prompts"]),
        }
        if session is not None:
            # what is really in use: a Streamable HTTP URL may have fallen back to legacy SSE
            report["transport"] = session.transport.describe().get("transport", self.config.kind)
            report["era"] = session.era
            report["protocolVersion"] = session.protocol_version
            report["serverInfo"] = session.server_info
            pid = session.transport.describe().get("pid")
            if pid is not None:
                report["pid"] = pid
            if self.connected_at is not None:
                report["upSince"] = _iso(self.connected_at)
        if self.last_error:
            report["error"] = self.last_error
        if self.last_failure is not None:
            reason, at = self.last_failure
            report["lastFailure"] = {"error": reason, "at": _iso(at)}
        if self.pins is not None:
            report.update(self.pins.report())
        return report


MODERN_CAPABILITY_KEYS = ("sampling", "elicitation", "roots", "experimental", "extensions")


def _modern_capabilities(capabilities: dict[str, Any]) -> dict[str, Any]:
    """A client's capabilities in the modern shape (legacy ``roots.listChanged`` dropped)."""
    out = {k: v for k, v in capabilities.items() if k in MODERN_CAPABILITY_KEYS}
    if isinstance(out.get("roots"), dict) and "listChanged" in out["roots"]:
        out["roots"] = {k: v for k, v in out["roots"].items() if k != "listChanged"}
    return out


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out connecting"
    if isinstance(exc, UpstreamRejected):
        return f"refused the handshake: {exc.message}"
    return str(exc) or type(exc).__name__
