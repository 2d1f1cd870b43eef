"""The Streamable HTTP endpoint (``/mcp``), both eras on one URL.

Era detection follows the spec's rules for a dual-era server: ``initialize`` starts a legacy
session; a request whose ``_meta`` (or ``MCP-Protocol-Version`` header) names a modern version is
served statelessly after its headers are checked against its body; anything else belongs to a
legacy session named by ``Mcp-Session-Id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from catalyst_mcp.context import ANONYMOUS, Identity, same_caller
from catalyst_mcp.deadlines import deadlines
from catalyst_mcp.errors import (
    CatalystError,
    HeaderMismatch,
    InvalidRequest,
    MethodNotFound,
    ProtocolError,
)
from catalyst_mcp.protocol.dispatch import Dispatcher, check_modern_meta, modern_meta
from catalyst_mcp.protocol.headers import decode_header_value, header_text
from catalyst_mcp.protocol.hub import Listener, accepted_filter
from catalyst_mcp.protocol.jsonrpc import Message, decode, error_response, validate
from catalyst_mcp.protocol.legacy import LegacySession, SharedSession
from catalyst_mcp.protocol.versions import (
    LEGACY_VERSIONS,
    MODERN_VERSIONS,
    SUBSCRIPTION_ID_KEY,
)
from catalyst_mcp.settings import GatewaySettings
from catalyst_mcp.transports.asgi import (
    BodyTooLarge,
    ClientGone,
    EventStream,
    Receive,
    Scope,
    Send,
    header_map,
    read_body,
    send_bytes,
    send_json,
    watch_disconnect,
)

if TYPE_CHECKING:
    from catalyst_mcp.cluster.sessions import SharedSessions

__all__ = ["StreamableHttpEndpoint"]

log = logging.getLogger("catalyst.http")

KEEPALIVE_SECONDS = 15.0
# A call still running after this long gets a watcher that cancels it if the client leaves.
WATCH_AFTER_SECONDS = 0.05
NAMED_METHODS = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
    **dict.fromkeys(("tasks/get", "tasks/update", "tasks/cancel"), "taskId"),  # SEP-2663
}


class StreamableHttpEndpoint:
    def __init__(self, dispatcher: Dispatcher, settings: GatewaySettings) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        self._tasks: set[asyncio.Task[Any]] = set()
        # with redis.url: sessions in Redis, for every instance (None: in this process)
        self.shared: SharedSessions | None = None

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes] | None = None,
        identity: Identity = ANONYMOUS,
    ) -> None:
        """Serve one request of ``identity``; ``headers`` as parsed by the caller, which checked
        Origin/Host and authenticated the caller."""
        if headers is None:
            headers = header_map(scope)
        method = scope["method"]
        if method == "POST":
            await self._post(headers, receive, send, identity)
        elif method == "GET":
            await self._get(headers, receive, send, identity)
        elif method == "DELETE":
            await self._delete(headers, send, identity)
        else:
            await send_bytes(send, 405, b"", None, [(b"allow", b"GET, POST, DELETE")])

    # ---- POST ------------------------------------------------------------------------------

    async def _post(
        self, headers: dict[bytes, bytes], receive: Receive, send: Send, identity: Identity
    ) -> None:
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            exc = InvalidRequest("Unsupported Media Type: Content-Type must be application/json")
            await send_json(send, 415, error_response(None, exc))
            return
        accept = headers.get(b"accept")
        if accept is not None and not (
            b"application/json" in accept or b"*/*" in accept or b"application/*" in accept
        ):
            exc = InvalidRequest("Not Acceptable: Accept must include application/json")
            await send_json(send, 406, error_response(None, exc))
            return
        try:
            body = await read_body(
                receive, self.settings.max_request_bytes, headers.get(b"content-length")
            )
        except BodyTooLarge:
            limit = self.settings.max_request_bytes
            exc = InvalidRequest(f"Payload Too Large: the limit is {limit} bytes")
            await send_json(send, 413, error_response(None, exc))
            return
        except ClientGone:
            return
        try:
            message = validate(self._decode(body))
        except ProtocolError as exc:
            await send_json(send, 400, error_response(None, exc))
            return
        meta = modern_meta(message)
        # ``initialize`` starts a legacy session, unless its _meta makes it a modern request:
        # then it is a removed method (404 + -32601) like any other unknown one.
        if message.get("method") == "initialize" and "id" in message and meta is None:
            await self._initialize(message, send, identity)
        elif meta is not None or self._modern_header(headers):
            await self._modern(message, meta, headers, receive, send, identity)
        else:
            await self._legacy(message, headers, send, identity)

    @staticmethod
    def _decode(body: bytes) -> Any:
        data = decode(body)
        if isinstance(data, list):
            raise InvalidRequest("Invalid Request: JSON-RPC batches are not supported")
        return data

    @staticmethod
    def _modern_header(headers: dict[bytes, bytes]) -> bool:
        version = headers.get(b"mcp-protocol-version")
        return version is not None and version.decode("latin-1") >= MODERN_VERSIONS[0]

    async def _initialize(self, message: Message, send: Send, identity: Identity) -> None:
        try:
            if self.shared is None:
                session, response = self.dispatcher.initialize(message, identity)
            else:
                session, response = await self.shared.initialize(message, identity)
        except CatalystError as exc:
            # 400 for a bad request; a full session store says 429 or 503 (SessionLimit)
            status = exc.http_status if exc.http_status >= 400 else 400
            await send_json(send, status, error_response(message["id"], exc))
            return
        await send_json(send, 200, response, [(b"mcp-session-id", session.id.encode())])

    # ---- modern ----------------------------------------------------------------------------

    def _check_headers(self, message: Message, meta: Any, headers: dict[bytes, bytes]) -> None:
        version = headers.get(b"mcp-protocol-version")
        if version is None:
            raise HeaderMismatch("Header mismatch: MCP-Protocol-Version header is required")
        check_modern_meta(meta, decode_header_value(version))
        if "id" not in message:
            return  # header rules for notifications are not defined by the spec
        method = message["method"]
        header_method = headers.get(b"mcp-method")
        if header_method is None:
            raise HeaderMismatch("Header mismatch: Mcp-Method header is required")
        if decode_header_value(header_method) != method:
            raise HeaderMismatch(
                f"Header mismatch: Mcp-Method header value does not match body method {method!r}"
            )
        field = NAMED_METHODS.get(method)
        if field is None:
            return
        params = message.get("params") or {}
        raw = headers.get(b"mcp-name")
        if raw is None:
            raise HeaderMismatch("Header mismatch: Mcp-Name header is required")
        if decode_header_value(raw) != params.get(field):
            raise HeaderMismatch(
                f"Header mismatch: Mcp-Name header value does not match body {field}"
            )
        if method == "tools/call":
            self._check_param_headers(params, headers)

    def _check_param_headers(self, params: dict[str, Any], headers: dict[bytes, bytes]) -> None:
        """Arguments the tool marks ``x-mcp-header`` must be mirrored, unchanged, in headers."""
        wanted = self.dispatcher.server.registry.param_headers.get(params.get("name", ""))
        if not wanted:
            return
        arguments = params.get("arguments")
        if not isinstance(arguments, dict):
            return
        for header, argument in wanted:
            value = arguments.get(argument)
            if value is None:
                continue
            raw = headers.get(f"mcp-param-{header.lower()}".encode("latin-1"))
            if raw is None:
                raise HeaderMismatch(f"Header mismatch: Mcp-Param-{header} header is required")
            if not _same_value(decode_header_value(raw), value):
                raise HeaderMismatch(
                    f"Header mismatch: Mcp-Param-{header} header value does not match "
                    f"argument {argument!r}"
                )

    async def _modern(
        self,
        message: Message,
        meta: Any,
        headers: dict[bytes, bytes],
        receive: Receive,
        send: Send,
        identity: Identity,
    ) -> None:
        request_id = message.get("id")
        try:
            if "method" not in message:
                raise InvalidRequest("Invalid Request: modern clients do not send responses")
            self._check_headers(message, meta, headers)
        except CatalystError as exc:
            await send_json(
                send,
                exc.http_status if exc.http_status != 200 else 400,
                error_response(request_id, exc),
            )
            return
        if request_id is None:
            await send_bytes(send, 202, b"", None)
            return
        method = message["method"]
        if method == "subscriptions/listen":
            await self._listen(message, receive, send, identity)
            return
        if not self.dispatcher.server.knows(method):
            unknown = MethodNotFound(f"Method not found: {method}")
            await send_json(send, 404, error_response(request_id, unknown))
            return
        stream = EventStream(send)
        task = asyncio.current_task()
        watcher: asyncio.Task[None] | None = None

        def start_watching() -> None:
            nonlocal watcher
            if task is not None:
                watcher = watch_disconnect(receive, task.cancel)

        deadlines.add(stream, WATCH_AFTER_SECONDS, start_watching)
        try:
            response = await self.dispatcher.modern(
                message, meta, stream.event, identity, headers=headers
            )
        except asyncio.CancelledError:
            if watcher is not None and watcher.done() and task is not None:
                task.uncancel()  # the client went away: that is the cancellation
                return
            raise
        finally:
            deadlines.discard(stream)
            if watcher is not None:
                watcher.cancel()
        status = 200
        if response is not None and "error" in response:
            status = _status_for(response["error"])
        await stream.finish(response, status)

    async def _listen(
        self, message: Message, receive: Receive, send: Send, identity: Identity
    ) -> None:
        params = message.get("params") or {}
        listener = Listener(message["id"], accepted_filter(params.get("notifications")))
        hub = self.dispatcher.hub
        await hub.add(listener, self.dispatcher.server.may_subscribe(identity))
        stream = EventStream(send)
        gone = asyncio.Event()
        watcher = watch_disconnect(receive, gone.set)
        try:
            await stream.event(
                listener.tagged(
                    "notifications/subscriptions/acknowledged", {"notifications": listener.filter}
                )
            )
            while not gone.is_set():
                getter = asyncio.ensure_future(listener.queue.get())
                waiter = asyncio.ensure_future(gone.wait())
                done, _ = await asyncio.wait(
                    {getter, waiter}, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                if getter in done:
                    await stream.event(getter.result())
                else:
                    getter.cancel()
                    if not gone.is_set():
                        await stream.raw(b": keep-alive\n\n")
        finally:
            watcher.cancel()
            await hub.remove(listener)
            if not gone.is_set():
                result = {"resultType": "complete", "_meta": {SUBSCRIPTION_ID_KEY: message["id"]}}
                await stream.finish({"jsonrpc": "2.0", "id": message["id"], "result": result})

    # ---- legacy ----------------------------------------------------------------------------

    def _session(
        self, headers: dict[bytes, bytes], identity: Identity
    ) -> tuple[LegacySession | None, int, str]:
        raw = headers.get(b"mcp-session-id")
        if raw is None:
            return (
                None,
                400,
                "Bad Request: Mcp-Session-Id header is required (send initialize first)",
            )
        session = self.dispatcher.sessions.get(raw.decode("latin-1"))
        if session is None or not same_caller(session.identity, identity):
            # another caller's session is as good as none: its id says nothing to this one
            return None, 404, "Session not found: initialize a new session"
        version = headers.get(b"mcp-protocol-version")
        if version is not None and version.decode("latin-1") not in LEGACY_VERSIONS:
            return None, 400, "Bad Request: unsupported MCP-Protocol-Version"
        return session, 200, ""

    async def _shared_session(
        self, headers: dict[bytes, bytes], identity: Identity
    ) -> tuple[LegacySession | None, int, str]:
        """:meth:`_session` for a session this instance has not seen yet: from Redis."""
        assert self.shared is not None
        raw = headers[b"mcp-session-id"]
        try:
            if await self.shared.load(raw.decode("latin-1")) is None:
                return None, 404, "Session not found: initialize a new session"
        except CatalystError as exc:  # Redis is down: SharedStateUnavailable
            return None, exc.http_status, exc.message
        return self._session(headers, identity)  # now held here: checked as any other

    async def _legacy(
        self, message: Message, headers: dict[bytes, bytes], send: Send, identity: Identity
    ) -> None:
        session, status, why = self._session(headers, identity)
        if session is None and status == 404 and self.shared is not None:
            session, status, why = await self._shared_session(headers, identity)
        if session is None:
            await send_json(send, status, error_response(message.get("id"), InvalidRequest(why)))
            return
        if self.shared is not None and isinstance(session, SharedSession):
            self.shared.used(session)  # in use: no cap may take it now
        if "id" not in message or "method" not in message:
            await self.dispatcher.legacy(session, message, _no_stream, identity, headers=headers)
            await send_bytes(send, 202, b"", None)
            return
        stream = EventStream(send, [(b"mcp-session-id", session.id.encode())])
        response = await self.dispatcher.legacy(
            session, message, stream.event, identity, headers=headers
        )
        await stream.finish(response)

    async def _get(
        self, headers: dict[bytes, bytes], receive: Receive, send: Send, identity: Identity
    ) -> None:
        if b"mcp-session-id" not in headers:
            await send_bytes(send, 405, b"", None, [(b"allow", b"POST")])
            return
        if b"text/event-stream" not in headers.get(b"accept", b"text/event-stream"):
            exc = InvalidRequest("Not Acceptable: Accept must include text/event-stream")
            await send_json(send, 406, error_response(None, exc))
            return
        session, status, why = self._session(headers, identity)
        if session is None and status == 404 and self.shared is not None:
            session, status, why = await self._shared_session(headers, identity)
        if session is None:
            await send_json(send, status, error_response(None, InvalidRequest(why)))
            return
        if isinstance(session, SharedSession):  # its messages come to this instance now
            session.listening = True
            try:
                claimed = await session.relay.claim(session)
            except CatalystError as exc:
                session.listening = False
                await send_json(send, exc.http_status, error_response(None, exc))
                return
            if not claimed:  # it ended meanwhile
                gone = InvalidRequest("Session not found: initialize a new session")
                await send_json(send, 404, error_response(None, gone))
                return
        await drain_outbox(
            session, receive, EventStream(send, [(b"mcp-session-id", session.id.encode())])
        )

    async def _delete(self, headers: dict[bytes, bytes], send: Send, identity: Identity) -> None:
        raw = headers.get(b"mcp-session-id")
        if raw is None:
            await send_bytes(send, 405, b"", None, [(b"allow", b"POST")])
            return
        session_id = raw.decode("latin-1")
        session = self.dispatcher.sessions.get(session_id)
        try:
            if session is None and self.shared is not None:
                session = await self.shared.load(session_id)
            found = session is not None and same_caller(session.identity, identity)
            if found and isinstance(session, SharedSession):
                await session.relay.end(session_id)  # on every instance
        except CatalystError as exc:  # Redis is down: SharedStateUnavailable
            await send_json(send, exc.http_status, error_response(None, exc))
            return
        if found:
            self.dispatcher.close_session(session_id)
        await send_bytes(send, 200 if found else 404, b"", None)


async def drain_outbox(session: LegacySession, receive: Receive, stream: EventStream) -> None:
    """Relay a session's queued messages on an SSE stream until the client leaves."""
    gone = asyncio.Event()
    watcher = watch_disconnect(receive, gone.set)
    session.listening = True
    shared = session if isinstance(session, SharedSession) else None
    try:
        await stream.start()
        while not gone.is_set() and not session.closed:
            getter = asyncio.ensure_future(session.next_message(KEEPALIVE_SECONDS))
            waiter = asyncio.ensure_future(gone.wait())
            done, _ = await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if getter not in done:
                getter.cancel()
                break
            message = getter.result()
            if message is None:
                if shared is not None:  # anything that went to Redis meanwhile comes here
                    with contextlib.suppress(CatalystError):
                        await shared.relay.claim(shared)
                await stream.raw(b": keep-alive\n\n")
            else:
                await stream.event(message)
    finally:
        session.listening = False
        watcher.cancel()
        if shared is not None:
            with contextlib.suppress(CatalystError):
                await shared.relay.release(shared)
        if not gone.is_set():
            await stream.finish(None)


async def _no_stream(message: Message) -> None:
    return None


def _same_value(text: str, value: Any) -> bool:
    """Header text against an argument value (numbers compared as numbers: 42.0 == 42)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return text == header_text(value)


def _status_for(error: dict[str, Any]) -> int:
    code = error.get("code")
    if code in (-32020, -32021, -32022):
        return 400
    if code == -32601:
        return 404
    return 200
