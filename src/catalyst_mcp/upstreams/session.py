"""One MCP client session to one upstream server, in whichever era the server speaks.

Negotiation follows the spec's dual-era client rules: probe with ``server/discover`` (modern);
a ``DiscoverResult`` or a recognised modern error means modern, anything else (another error,
an HTTP 4xx without a modern body, a timeout) means legacy, and we ``initialize``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from catalyst_mcp import __version__
from catalyst_mcp.deadlines import deadlines
from catalyst_mcp.errors import (
    CatalystError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from catalyst_mcp.observability.tracing import upstream_call
from catalyst_mcp.protocol.jsonrpc import Message, error_response, notification, request
from catalyst_mcp.protocol.versions import (
    CLIENT_CAPS_KEY,
    CLIENT_INFO_KEY,
    LATEST_LEGACY,
    LEGACY_VERSIONS,
    MODERN_VERSIONS,
    PROTOCOL_VERSION_KEY,
    SERVER_INFO_KEY,
    Era,
)
from catalyst_mcp.upstreams.base import MessageHandler, UpstreamTransport
from catalyst_mcp.upstreams.http import HttpStatusError, SseTransport, StreamableHttpTransport

__all__ = ["EraPreference", "ServerRequestHandler", "UpstreamSession"]

log = logging.getLogger("catalyst.upstream")

EraPreference = Literal["auto", "modern", "legacy"]
# How long a cancellation notification may take to go out before it is given up.
CANCEL_SEND_SECONDS = 5.0
ServerRequestHandler = Callable[[Message], Awaitable[dict[str, Any]]]

CLIENT_INFO = {"name": "catalyst-gateway", "version": __version__}
# What the gateway can do for an upstream: it relays these to whichever client is calling.
MODERN_CLIENT_CAPS: dict[str, Any] = {
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
    "roots": {},
}
LEGACY_CLIENT_CAPS: dict[str, Any] = {
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
    "roots": {"listChanged": True},
}


class UpstreamSession:
    def __init__(
        self,
        transport: UpstreamTransport,
        *,
        era: EraPreference = "auto",
        handshake_timeout: float = 30.0,
        probe_timeout: float = 5.0,
    ) -> None:
        self.transport = transport
        self.server = transport.server
        self.preference = era
        self.handshake_timeout = handshake_timeout
        self.probe_timeout = probe_timeout
        self.era: Era = "legacy"
        self.protocol_version = LATEST_LEGACY
        self.capabilities: dict[str, Any] = {}
        self.server_info: dict[str, Any] = {}
        self.instructions: str | None = None
        self._ids = itertools.count(1)
        self._background: set[asyncio.Task[None]] = set()  # cancellations being sent
        self.on_notification: MessageHandler = _ignore
        self.on_server_request: ServerRequestHandler = _refuse
        transport.on_message = self._incoming

    # ---- handshake -------------------------------------------------------------------------

    async def connect(self) -> None:
        await self.transport.open()
        async with asyncio.timeout(self.handshake_timeout):
            if self.preference != "legacy" and await self._discover():
                return
            await self._initialize()

    def meta(
        self, extra: dict[str, Any] | None = None, capabilities: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The ``_meta`` a modern request needs, plus ``extra`` keys.

        ``capabilities`` are the calling client's: in the modern era capabilities are per
        request, so an upstream sees exactly what the client behind the gateway can do.
        """
        meta = {
            PROTOCOL_VERSION_KEY: self.protocol_version,
            CLIENT_CAPS_KEY: MODERN_CLIENT_CAPS if capabilities is None else capabilities,
            CLIENT_INFO_KEY: CLIENT_INFO,
        }
        if extra:
            meta.update(extra)
        return meta

    async def _discover(self) -> bool:
        version = MODERN_VERSIONS[0]
        self.transport.protocol_version = version
        self.transport.modern = True
        self.protocol_version = version
        message = request(next(self._ids), "server/discover", {"_meta": self.meta()})
        timeout = self.probe_timeout if self.preference == "auto" else self.handshake_timeout
        try:
            async with asyncio.timeout(timeout):
                answer = await self.transport.request(message)
        except (TimeoutError, HttpStatusError, UpstreamProtocolError) as exc:
            body = exc.body if isinstance(exc, HttpStatusError) else None
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and error.get("code") in (-32020, -32021):
                raise UpstreamProtocolError(
                    self.server, f"{self.server} rejected discovery: {error.get('message')}"
                ) from exc
            return self._fall_back(exc)
        result = answer.get("result")
        if isinstance(result, dict) and isinstance(result.get("supportedVersions"), list):
            supported = [v for v in MODERN_VERSIONS if v in result["supportedVersions"]]
            if not supported:
                return self._fall_back(None)
            self.era = "modern"
            self.protocol_version = supported[0]
            self.transport.protocol_version = supported[0]
            self.capabilities = result.get("capabilities") or {}
            meta = result.get("_meta") or {}
            self.server_info = meta.get(SERVER_INFO_KEY) or {}
            self.instructions = result.get("instructions")
            log.info("%s: modern era, protocol %s", self.server, self.protocol_version)
            return True
        # An error (-32022 naming only legacy versions, -32601 from a legacy server, ...).
        return self._fall_back(None)

    def _fall_back(self, exc: BaseException | None) -> bool:
        self.transport.modern = False
        self.transport.protocol_version = None
        if self.preference == "modern":
            raise UpstreamProtocolError(
                self.server, f"{self.server} does not speak the modern protocol ({exc or 'no'})"
            )
        return False

    async def _initialize(self) -> None:
        params = {
            "protocolVersion": LATEST_LEGACY,
            "capabilities": LEGACY_CLIENT_CAPS,
            "clientInfo": CLIENT_INFO,
        }
        message = request(next(self._ids), "initialize", params)
        try:
            answer = await self.transport.request(message)
        except HttpStatusError as exc:
            if isinstance(self.transport, StreamableHttpTransport) and exc.status in (
                400,
                404,
                405,
            ):
                raise _TrySse(self.server) from exc
            raise
        if "error" in answer:
            raise UpstreamRejected(self.server, answer["error"])
        result = answer["result"]
        version = result.get("protocolVersion")
        if version not in LEGACY_VERSIONS:
            raise UpstreamProtocolError(
                self.server, f"{self.server} offered unsupported protocol version {version!r}"
            )
        self.era = "legacy"
        self.protocol_version = version
        if version >= "2025-06-18":
            self.transport.protocol_version = version
        self.capabilities = result.get("capabilities") or {}
        self.server_info = result.get("serverInfo") or {}
        self.instructions = result.get("instructions")
        await self.transport.send(notification("notifications/initialized"))
        if isinstance(self.transport, StreamableHttpTransport):
            self.transport.start_listening()
        log.info("%s: legacy era, protocol %s", self.server, version)

    # ---- calls -----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: dict[str, Any],
        *,
        timeout: float | None,
        on_related: MessageHandler | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send one request; return its result or raise the mapped error (None: no time limit).

        Within a traced client request, it carries the trace context (``_meta``, and the
        ``traceparent`` header over HTTP) and gets a span of its own."""
        call = upstream_call(self, method, params, headers)
        if call is None:
            return await self._request(method, params, timeout, on_related, headers)
        try:
            result = await self._request(method, call.params, timeout, on_related, call.headers)
        except BaseException as exc:
            call.finish(None, exc)
            raise
        call.finish(result, None)
        return result

    async def _request(
        self,
        method: str,
        params: dict[str, Any],
        timeout: float | None,
        on_related: MessageHandler | None,
        headers: dict[str, str] | None,
    ) -> dict[str, Any]:
        request_id = next(self._ids)
        message = request(request_id, method, params)
        task = asyncio.current_task()
        expired = False
        if timeout is not None and task is not None:

            def expire() -> None:
                nonlocal expired
                expired = True
                task.cancel()

            deadlines.add((self, request_id), timeout, expire)
        try:
            answer = await self.transport.request(message, on_related, headers)
        except asyncio.CancelledError as exc:
            if expired and task is not None and task.uncancel() == 0:
                self._cancel(request_id, "timed out")
                raise UpstreamTimeout(
                    self.server, f"{self.server} did not answer {method} within {timeout or 0:g}s"
                ) from exc
            self._cancel(request_id, "cancelled by the client")
            raise
        except HttpStatusError as exc:
            if isinstance(exc.body, dict) and isinstance(exc.body.get("error"), dict):
                raise UpstreamRejected(self.server, exc.body["error"]) from exc
            raise
        finally:
            deadlines.discard((self, request_id))
        if "error" in answer:
            error = answer["error"]
            raise UpstreamRejected(self.server, error if isinstance(error, dict) else {})
        result: dict[str, Any] = answer["result"]
        return result

    @property
    def ping_method(self) -> str:
        """The request that checks liveness: ``ping``, or in the modern era (2026-07-28 removed
        ping) ``server/discover``, which every modern server must serve."""
        return "server/discover" if self.era == "modern" else "ping"

    async def ping(self, timeout: float) -> None:
        """Check that the server still answers, within ``timeout`` seconds.

        Any answer counts, a JSON-RPC error too (-32601 from a server without ``ping`` still
        proves it reads and writes), and so does an HTTP refusal below 500. Raises
        :class:`UpstreamTimeout` when no answer comes, another :class:`UpstreamError` when the
        connection fails or an HTTP 5xx says the server behind it is down.
        """
        params = {"_meta": self.meta()} if self.era == "modern" else {}
        try:
            await self.request(self.ping_method, params, timeout=timeout)
        except UpstreamRejected:
            return
        except HttpStatusError as exc:
            if exc.status >= 500:
                raise

    def _cancel(self, request_id: int, reason: str) -> None:
        """Send ``notifications/cancelled`` for a request, without waiting for it to go out: a
        server that stopped answering may not take it either (a POST to a hung HTTP server
        would hold the caller long after its time limit)."""
        # Modern HTTP: abandoning the response stream is the cancellation (done by the transport).
        if self.era == "modern" and isinstance(self.transport, StreamableHttpTransport):
            return
        params = {"requestId": request_id, "reason": reason}
        note = notification("notifications/cancelled", params)
        task = asyncio.get_running_loop().create_task(self._send_quietly(note))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_quietly(self, message: Message) -> None:
        with contextlib.suppress(CatalystError, OSError, TimeoutError):
            async with asyncio.timeout(CANCEL_SEND_SECONDS):
                await self.transport.send(message)

    # ---- messages the server sends us --------------------------------------------------------

    async def _incoming(self, message: Message) -> None:
        if "id" in message:
            asyncio.create_task(self.answer(message, self.on_server_request))  # noqa: RUF006
        else:
            await self.on_notification(message)

    async def answer(self, message: Message, handler: ServerRequestHandler) -> None:
        """Answer a server→client request with ``handler`` (``ping`` is answered here)."""
        try:
            result = {} if message["method"] == "ping" else await handler(message)
            reply: Message = {"jsonrpc": "2.0", "id": message["id"], "result": result}
        except CatalystError as exc:
            reply = error_response(message["id"], exc)
        except Exception:
            log.exception("%s: failed to answer %s", self.server, message.get("method"))
            reply = error_response(message["id"], CatalystError("internal error"))
        with contextlib.suppress(CatalystError, OSError):
            await self.transport.send(reply)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await self.transport.close()


class _TrySse(UpstreamError):
    """Streamable HTTP initialize was refused the way an HTTP+SSE-only server refuses it."""

    def __init__(self, server: str) -> None:
        super().__init__(server, f"{server} does not accept Streamable HTTP")


async def _ignore(message: Message) -> None:
    return None


async def _refuse(message: Message) -> dict[str, Any]:
    raise UpstreamUnavailable("", f"no client can answer {message.get('method')} now")


async def open_session(
    transport: UpstreamTransport, *, era: EraPreference, handshake_timeout: float
) -> UpstreamSession:
    """Connect, falling back from Streamable HTTP to HTTP+SSE when the server needs it."""
    session = UpstreamSession(transport, era=era, handshake_timeout=handshake_timeout)
    try:
        await session.connect()
    except _TrySse:
        await transport.close()
        assert isinstance(transport, StreamableHttpTransport)
        sse = SseTransport(transport.server, transport.url, transport.extra_headers)
        sse.on_closed = transport.on_closed
        session = UpstreamSession(sse, era="legacy", handshake_timeout=handshake_timeout)
        await session.connect()
    return session
