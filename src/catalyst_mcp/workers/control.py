"""The line between the supervisor and one worker: a socket pair, one JSON object per line.

A worker says ``{"event": "ready"}`` once it listens, or ``{"event": "failed", "message": ...,
"code": n}`` when it cannot start. The supervisor says nothing yet; its end closing (the
supervisor died, even by ``kill -9``) tells the worker to stop, so no worker outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

__all__ = ["ControlLine", "decode", "encode"]

MAX_LINE = 64 * 1024


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    """One message, or None for a line that is not one (ignored, never fatal)."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


class ControlLine:
    """One end of the pair, read and written from the event loop."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> ControlLine:
        reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_LINE)
        return cls(reader, writer)

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(message))

    async def receive(self) -> dict[str, Any] | None:
        """The next message; None once the other end has closed."""
        while True:
            try:
                line = await self.reader.readline()
            except (ValueError, ConnectionError):  # an overlong line, or a reset
                return None
            if not line:
                return None
            message = decode(line)
            if message is not None:
                return message

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    def close(self) -> None:
        self.writer.close()
