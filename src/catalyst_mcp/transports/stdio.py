"""``catalyst serve --stdio``: one client over stdin/stdout, as desktop clients launch servers.

Messages are JSON lines. The era is per message, as on HTTP: ``initialize`` starts the legacy
session of this process; a request carrying modern ``_meta`` is served statelessly. Modern
cancellation on stdio is ``notifications/cancelled`` (it also ends ``subscriptions/listen``).
Logs go to stderr; stdout carries protocol messages only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from catalyst_mcp.app import Gateway
from catalyst_mcp.errors import CatalystError, ProtocolError
from catalyst_mcp.protocol.dispatch import check_modern_meta, error_for, modern_meta
from catalyst_mcp.protocol.hub import Listener, accepted_filter
from catalyst_mcp.protocol.jsonrpc import Message, RequestId, decode, error_response, validate
from catalyst_mcp.protocol.legacy import LegacySession
from catalyst_mcp.protocol.versions import SUBSCRIPTION_ID_KEY
from catalyst_mcp.providers import Provider
from catalyst_mcp.settings import Settings

__all__ = ["StdioConnection", "serve_stdio"]

log = logging.getLogger("catalyst.stdio")

LINE_LIMIT = 64 * 1024 * 1024


class StdioConnection:
    """Serves the messages of one byte stream pair with a :class:`Gateway`."""

    def __init__(self, gateway: Gateway, writer: asyncio.StreamWriter) -> None:
        self.gateway = gateway
        self.writer = writer
        self.session: LegacySession | None = None
        self.modern_tasks: dict[RequestId, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._outbox_task: asyncio.Task[None] | None = None

    async def write(self, message: Message) -> None:
        self.writer.write(orjson.dumps(message) + b"\n")
        await self.writer.drain()

    async def run(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    await self.write(error_response(None, ProtocolError("message too large")))
                    continue
                if not line:
                    return
                if line.strip():
                    await self.receive(line)
        finally:
            await self.close()

    async def receive(self, line: bytes) -> None:
        try:
            data = decode(line)
            if isinstance(data, list):
                raise ProtocolError("Invalid Request: JSON-RPC batches are not supported")
            message = validate(data)
        except ProtocolError as exc:
            await self.write(error_response(None, exc))
            return
        self._spawn(self._handle(message))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, message: Message) -> None:
        dispatcher = self.gateway.dispatcher
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
                    message, self.gateway.access.anonymous
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
        answer = await dispatcher.legacy(self.session, message, self.write)
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
                await self._listen(message)
                return
            response = await self.gateway.dispatcher.modern(
                message, meta, self.write, self.gateway.access.anonymous
            )
        except asyncio.CancelledError:
            return
        finally:
            self.modern_tasks.pop(request_id, None)
        if response is not None:
            await self.write(response)

    async def _listen(self, message: Message) -> None:
        params = message.get("params") or {}
        listener = Listener(message["id"], accepted_filter(params.get("notifications")))
        hub = self.gateway.hub
        anonymous = self.gateway.access.anonymous
        await hub.add(listener, self.gateway.dispatcher.server.may_subscribe(anonymous))
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
        session.listening = True  # stdout is always open for this session's notifications
        while not session.closed:
            message = await session.next_message(3600)
            if message is not None:
                await self.write(message)

    async def close(self) -> None:
        for task in [*self.tasks, *([self._outbox_task] if self._outbox_task else [])]:
            task.cancel()
        if self.session is not None:
            self.gateway.dispatcher.close_session(self.session.id)


async def serve_stdio(
    settings: Settings, providers: Sequence[Provider] = (), config_file: Path | None = None
) -> None:
    """Serve one client on this process's stdin/stdout (``providers`` and ``config_file`` as
    for :class:`Gateway`)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, sys.stdout.buffer
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    gateway = Gateway(settings, providers, config_file=config_file)
    await gateway.start()
    gateway.settle_memory()
    try:
        await StdioConnection(gateway, writer).run(reader)
    finally:
        await gateway.stop()
