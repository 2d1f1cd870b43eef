"""One configured upstream MCP server: connect, supervise, relay calls.

The connection is long-lived and shared by every client (no per-call handshake). A supervisor
task reconnects with exponential backoff when the process dies or the connection fails; while it is
down, calls fail fast with a clear error and ``/ready`` says why. A server that stops answering
(no answer to a probe after a call timed out, or to the periodic probe) is restarted at once
(:mod:`catalyst_mcp.upstreams.liveness`). A circuit breaker stops hammering a server whose calls
keep failing.

The parts it is built from: its lists (:class:`~catalyst_mcp.upstreams.lists.ServerLists`), what
the server sends besides answers (:class:`~catalyst_mcp.upstreams.inbound.Inbound`), its resource
subscriptions (:mod:`catalyst_mcp.upstreams.subscriptions`) and its liveness checks.
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
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from catalyst_mcp.protocol.versions import LOG_LEVEL_KEY
from catalyst_mcp.providers import LIST_KINDS, ListKind, Provider
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams.base import UpstreamTransport
from catalyst_mcp.upstreams.breaker import CircuitBreaker
from catalyst_mcp.upstreams.http import SseTransport, StreamableHttpTransport
from catalyst_mcp.upstreams.inbound import Inbound
from catalyst_mcp.upstreams.lists import ServerLists
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
        self._inflight: dict[int, CallContext] = {}
        self._tokens = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._transport: UpstreamTransport | None = None
        self._lost = asyncio.Event()
        self._stopping = False
        self._settled = asyncio.Event()
        self._serial = asyncio.Lock() if config.serialize_calls else None
        self._listen_task: asyncio.Task[None] | None = None
        self.lists = ServerLists(
            name,
            config.connect_timeout_seconds,
            lambda: self.session,
            lambda kinds: self.on_change(self, kinds),
        )
        self.inbound = Inbound(
            name,
            self._inflight,
            lambda: self.session,
            self.lists.refetch,
            lambda uri: self.on_resource_updated(self, uri),
        )
        self.subscriptions = Subscriptions(
            name, config, self.call_timeout, lambda: self.session, self.inbound.notification
        )
        self.liveness = Liveness(
            name, config.ping_interval_seconds, config.ping_timeout_seconds, self._restart
        )
        self._watch_task: asyncio.Task[None] | None = None
        self._restart_now = False  # the next reconnect follows a deliberate kill: no backoff
        self._attempt_waiters: list[asyncio.Future[None]] = []

    def use_pins(self, pins: ToolPins) -> None:
        """Review every tools list that arrives against its pinned definitions: tools that
        changed since they were approved are held back (:mod:`catalyst_mcp.trust.pinning`)."""
        self.lists.use_pins(pins)

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
                session.on_notification = self.inbound.notification
                session.on_server_request = self.inbound.unrelated_request
                self.session = session
                await self.lists.fetch_all(session)
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
                self.lists.clear()
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
        self.lists.stop()
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

    # ---- lists (kept in self.lists) --------------------------------------------------------

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return self.lists.served[kind]

    def withheld(self, kind: ListKind, name: str) -> CatalystError | None:
        return self.lists.withheld(kind, name)

    async def refresh(self) -> None:
        await self.lists.refresh()

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
            headers = self.lists.headers_for(params)
        self._inflight[token] = ctx
        try:
            result = await session.request(
                method,
                params,
                timeout=self.call_timeout,
                on_related=lambda message: self.inbound.related(message, ctx, token),
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

    def _unavailable_reason(self) -> str:
        why = f": {self.last_error}" if self.last_error else ""
        retry = self._retry_at
        when = ""
        if retry is not None and self.status == "failed":
            left = retry - time.monotonic()
            when = f"; retrying in {left:.0f}s" if left >= 0.5 else "; retrying now"
        return f"{self.name} is unavailable ({self.status}){why}{when}"

    # ---- resource subscriptions (kept in self.subscriptions) ---------------------------------

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
            "tools": len(self.lists.served["tools"]),
            "resources": len(self.lists.served["resources"]),
            "prompts": len(self.lists.served["prompts"]),
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
        if self.lists.pins is not None:
            report.update(self.lists.pins.report())
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
