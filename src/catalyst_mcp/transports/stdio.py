"""``catalyst serve --stdio``: one client over stdin/stdout, as desktop clients launch servers.

Messages are JSON lines, served by :class:`~catalyst_mcp.transports.stream.MessageStream` (both
eras, per message) as the local anonymous caller. Logs go to stderr; stdout carries protocol
messages only.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from catalyst_mcp.app import Gateway
from catalyst_mcp.errors import ProtocolError
from catalyst_mcp.protocol.jsonrpc import Message, error_response
from catalyst_mcp.providers import Provider
from catalyst_mcp.settings import Settings
from catalyst_mcp.transports.stream import MessageStream

__all__ = ["StdioConnection", "serve_stdio"]

log = logging.getLogger("catalyst.stdio")

LINE_LIMIT = 64 * 1024 * 1024


class StdioConnection(MessageStream):
    """Serves the messages of one byte stream pair with a :class:`Gateway`."""

    def __init__(self, gateway: Gateway, writer: asyncio.StreamWriter) -> None:
        super().__init__(gateway.dispatcher, gateway.access.anonymous)
        self.gateway = gateway
        self.writer = writer

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
