"""The deprecated HTTP+SSE transport (2024-11-05): ``GET /sse`` and ``POST /messages``.

Still used by older clients. The GET opens a session and its event stream; the first event,
``endpoint``, names the URL to POST messages to. Every answer travels on the event stream; a POST
only gets ``202 Accepted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from catalyst_mcp.context import ANONYMOUS, Identity, same_caller
from catalyst_mcp.errors import CatalystError, InvalidRequest, ProtocolError
from catalyst_mcp.protocol.dispatch import Dispatcher
from catalyst_mcp.protocol.jsonrpc import Message, decode, error_response, validate
from catalyst_mcp.protocol.legacy import LegacySession, SharedSession, negotiate_version
from catalyst_mcp.protocol.versions import LATEST_LEGACY
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
)
from catalyst_mcp.transports.http import drain_outbox

if TYPE_CHECKING:
    from catalyst_mcp.cluster.sessions import SharedSessions

__all__ = ["LegacySseEndpoints"]

log = logging.getLogger("catalyst.http")

MESSAGES_PATH = "/messages"


class LegacySseEndpoints:
    def __init__(self, dispatcher: Dispatcher, settings: GatewaySettings) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        self._tasks: set[asyncio.Task[None]] = set()
        # with redis.url: sessions in Redis; a POST may reach any instance (None: this one)
        self.shared: SharedSessions | None = None

    async def stream(
        self, scope: Scope, receive: Receive, send: Send, identity: Identity = ANONYMOUS
    ) -> None:
        """GET /sse: open a session of ``identity`` and relay everything it is sent."""
        if scope["method"] != "GET":
            await send_bytes(send, 405, b"", None, [(b"allow", b"GET")])
            return
        shared = self.shared
        try:
            if shared is None:
                session = self.dispatcher.sessions.create(LATEST_LEGACY, {}, identity)
            else:  # in Redis: its messages may be POSTed to any instance
                session = await shared.create(LATEST_LEGACY, {}, identity)
                session.listening = True
                await shared.claim(session)  # posts come here, to its stream
        except CatalystError as exc:  # SessionLimit; SharedStateUnavailable
            await send_json(send, exc.http_status, error_response(None, exc))
            return
        stream = EventStream(send)
        root = scope.get("root_path", "")
        await stream.raw(
            f"event: endpoint\ndata: {root}{MESSAGES_PATH}?session_id={session.id}\n\n".encode()
        )
        try:
            await drain_outbox(session, receive, stream)
        finally:
            if shared is not None:  # the stream is the session: over, on every instance
                with contextlib.suppress(CatalystError):
                    await shared.end(session.id)
            self.dispatcher.close_session(session.id)

    async def messages(
        self, scope: Scope, receive: Receive, send: Send, identity: Identity = ANONYMOUS
    ) -> None:
        """POST /messages?session_id=...: accept one message of the session's own caller; its
        answer goes on the stream."""
        headers = header_map(scope)
        if scope["method"] != "POST":
            await send_bytes(send, 405, b"", None, [(b"allow", b"POST")])
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        session_id = (query.get("session_id") or query.get("sessionId") or [""])[0]
        session = self.dispatcher.sessions.get(session_id) if session_id else None
        if session is None and session_id and self.shared is not None:
            try:
                session = await self.shared.load(session_id)
            except CatalystError as exc:  # SharedStateUnavailable
                await send_json(send, exc.http_status, error_response(None, exc))
                return
        if session is not None and not same_caller(session.identity, identity):
            session = None  # another caller's session is as good as none
        if session is None:
            status, why = (
                (400, "session_id is required") if not session_id else (404, "Session not found")
            )
            await send_json(send, status, error_response(None, InvalidRequest(why)))
            return
        try:
            body = await read_body(
                receive, self.settings.max_request_bytes, headers.get(b"content-length")
            )
            data = decode(body)
            if isinstance(data, list):
                raise InvalidRequest("Invalid Request: JSON-RPC batches are not supported")
            message = validate(data)
        except BodyTooLarge:
            await send_json(send, 413, error_response(None, InvalidRequest("Payload Too Large")))
            return
        except ClientGone:
            return
        except ProtocolError as exc:
            await send_json(send, 400, error_response(None, exc))
            return
        if isinstance(session, SharedSession) and not session.listening:
            try:  # its stream is on another instance: that one answers it
                delivered = await session.relay.forward(session, message, identity)
            except CatalystError as exc:
                await send_json(send, exc.http_status, error_response(None, exc))
                return
            if not delivered:
                await send_json(
                    send, 404, error_response(None, InvalidRequest("Session not found"))
                )
                return
            await send_bytes(send, 202, b"Accepted", b"text/plain")
            return
        await send_bytes(send, 202, b"Accepted", b"text/plain")
        self.accept(session, message, identity, headers)

    def accept(
        self,
        session: LegacySession,
        message: Message,
        identity: Identity = ANONYMOUS,
        headers: dict[bytes, bytes] | None = None,
    ) -> None:
        """Serve a message POSTed for ``session`` (here, or at another instance that passed
        it on); its answer goes on the session's stream."""
        task = asyncio.create_task(self._handle(session, message, identity, headers))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(
        self,
        session: LegacySession,
        message: Message,
        identity: Identity = ANONYMOUS,
        headers: dict[bytes, bytes] | None = None,
    ) -> None:
        async def emit(outgoing: Message) -> None:
            session.post(outgoing)

        response: Message | None
        if message.get("method") == "initialize" and "id" in message:
            params: Any = message.get("params")
            if not isinstance(params, dict):
                params = {}
            version = negotiate_version(params.get("protocolVersion"))
            session.adopt(version, params)
            self.dispatcher.observer.count("initialize", "legacy", "sse", "ok")
            response = {
                "jsonrpc": "2.0",
                "id": message["id"],
                "result": self.dispatcher.server.initialize_result(version),
            }
        else:
            try:
                response = await self.dispatcher.legacy(
                    session, message, emit, identity, transport="sse", headers=headers
                )
            except CatalystError as exc:
                response = error_response(message.get("id"), exc)
        if response is not None:
            session.post(response)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
