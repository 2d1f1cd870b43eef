"""One client's JSON-RPC messages on one bidirectional stream: stdio and WebSocket alike.

The era is per message, as on HTTP: ``initialize`` starts the legacy session of this stream
(the stream is the session: its outbox, list changes and server→client requests go down the
same stream); a request carrying modern ``_meta`` is served statelessly. Each request runs in a
task of its own, so a slow call does not hold up the others. Modern cancellation is
``notifications/cancelled`` (it also ends ``subscriptions/listen``); closing the stream cancels
everything in flight.

A transport subclasses :class:`MessageStream`: it feeds each message it reads to
:meth:`MessageStream.receive`, says how a message is written (:meth:`MessageStream.write`), and
calls :meth:`MessageStream.close` when the stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import CatalystError, ProtocolError
from catalyst_mcp.protocol.dispatch import Dispatcher, check_modern_meta, error_for, modern_meta
from catalyst_mcp.protocol.hub import Listener, accepted_filter
from catalyst_mcp.protocol.jsonrpc import Message, RequestId, decode, error_response, validate
from catalyst_mcp.protocol.legacy import LegacySession
from catalyst_mcp.protocol.versions import SUBSCRIPTION_ID_KEY

__all__ = ["MessageStream"]

log = logging.getLogger("catalyst.protocol")

OUTBOX_WAKE_SECONDS = 60.0  # the legacy outbox relay wakes this often to keep its session alive


class MessageStream:
    """Serves the messages of one client stream with a :class:`Dispatcher`, as ``identity``."""

    transport = "stdio"  # its name in metrics and traces

    def __init__(self, dispatcher: Dispatcher, identity: Identity) -> None:
        self.dispatcher = dispatcher
        self.identity = identity
        self.session: LegacySession | None = None
        self.modern_tasks: dict[RequestId, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.streams: set[asyncio.Task[None]] = set()  # endless ones: listens
        self._outbox_task: asyncio.Task[None] | None = None
        # what per-session servers key this connection's modern requests by
        self.connection_id = f"conn-{secrets.token_hex(8)}"

    async def write(self, message: Message) -> None:
        """Send one message to the client (the transport's framing)."""
        raise NotImplementedError

    async def session_ended(self) -> None:
        """The gateway ended this stream's legacy session (evicted, or stopping)."""

    async def receive(self, data: bytes | str) -> None:
        """One message from the client: answer a malformed one at once, serve the others in
        tasks of their own."""
        try:
            decoded = decode(data)
            if isinstance(decoded, list):
                raise ProtocolError("Invalid Request: JSON-RPC batches are not supported")
            message = validate(decoded)
        except ProtocolError as exc:
            await self.write(error_response(None, exc))
            return
        task = asyncio.create_task(self._handle(message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, message: Message) -> None:
        dispatcher = self.dispatcher
        method = message.get("method")
        meta = modern_meta(message)
        # A modern initialize (with _meta) is served below as the removed method it is (-32601).
        if method == "initialize" and "id" in message and meta is None:
            if self.session is not None:
                again = ProtocolError("Invalid Request: this connection is already initialized")
                await self.write(error_response(message["id"], again))
                return
            try:
                self.session, response = dispatcher.initialize(
                    message, self.identity, transport=self.transport
                )
            except CatalystError as exc:
                response = error_response(message["id"], exc)
            else:
                self._outbox_task = asyncio.create_task(self._drain(self.session))
            await self.write(response)
            return
        if meta is not None:
            await self._modern(message, meta)
            return
        if method == "notifications/cancelled" and self.session is None:
            self._cancel_modern(message)
            return
        if self.session is None:
            if "id" in message:
                early = ProtocolError("Invalid Request: send initialize first, or use modern _meta")
                await self.write(error_response(message.get("id"), early))
            return
        answer = await dispatcher.legacy(
            self.session, message, self.write, self.identity, transport=self.transport
        )
        if answer is not None:
            await self.write(answer)

    def _cancel_modern(self, message: Message) -> None:
        params = message.get("params") or {}
        task = self.modern_tasks.get(params.get("requestId"))  # type: ignore[arg-type]
        if task is not None:
            task.cancel()

    async def _modern(self, message: Message, meta: dict[str, Any]) -> None:
        request_id = message.get("id")
        try:
            check_modern_meta(meta)
        except CatalystError as exc:
            if request_id is not None:
                await self.write(
                    {"jsonrpc": "2.0", "id": request_id, "error": error_for(exc, "modern")}
                )
            return
        if request_id is None:
            if message["method"] == "notifications/cancelled":
                self._cancel_modern(message)
            return
        task = asyncio.current_task()
        assert task is not None
        self.modern_tasks[request_id] = task
        try:
            if message["method"] == "subscriptions/listen":
                self.streams.add(task)
                await self._listen(message)
                return
            response = await self.dispatcher.modern(
                message,
                meta,
                self.write,
                self.identity,
                transport=self.transport,
                connection_id=self.connection_id,
            )
        except asyncio.CancelledError:
            return
        finally:
            self.modern_tasks.pop(request_id, None)
            self.streams.discard(task)
        if response is not None:
            await self.write(response)

    async def _listen(self, message: Message) -> None:
        params = message.get("params") or {}
        listener = Listener(message["id"], accepted_filter(params.get("notifications")))
        hub = self.dispatcher.hub
        await hub.add(listener, self.dispatcher.server.may_subscribe(self.identity))
        try:
            ack = {"notifications": listener.filter}
            await self.write(listener.tagged("notifications/subscriptions/acknowledged", ack))
            while True:
                await self.write(await listener.queue.get())
        except asyncio.CancelledError:
            result = {"resultType": "complete", "_meta": {SUBSCRIPTION_ID_KEY: message["id"]}}
            with contextlib.suppress(Exception):
                await self.write({"jsonrpc": "2.0", "id": message["id"], "result": result})
            raise
        finally:
            await hub.remove(listener)

    async def _drain(self, session: LegacySession) -> None:
        """Relay the session's outbox (list changes, resource updates) while the stream is
        open, and keep the session from expiring meanwhile: the open stream is its use."""
        session.listening = True
        wake = min(OUTBOX_WAKE_SECONDS, self.dispatcher.sessions.idle_seconds / 2)
        while not session.closed:
            message = await session.next_message(wake)
            session.last_seen = time.monotonic()
            if message is not None:
                await self.write(message)
        await self.session_ended()

    async def finish(self) -> None:
        """Let the requests in flight end (their answers still go out); end the endless
        streams (listens, the outbox relay) now."""
        for task in [*self.streams, *([self._outbox_task] if self._outbox_task else [])]:
            task.cancel()
        pending = [t for t in self.tasks if t not in self.streams]
        if pending:
            await asyncio.wait(pending)

    async def close(self) -> None:
        """The stream ended: cancel everything in flight, end the legacy session."""
        for task in [*self.tasks, *([self._outbox_task] if self._outbox_task else [])]:
            task.cancel()
        if self.session is not None:
            self.dispatcher.close_session(self.session.id)
        self.dispatcher.session_ended(self.connection_id)
