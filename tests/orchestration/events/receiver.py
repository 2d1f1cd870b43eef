"""A webhook receiver on a loopback socket: records each request and answers as scripted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["Received", "Receiver", "receiver"]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """``answers``: the statuses of the next requests (then 200); ``delay``: seconds to wait
    before answering."""

    port: int = 0
    answers: list[int] = field(default_factory=list)
    delay: float = 0.0
    got: list[Received] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/catalyst?x=1"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.got.append(Received(method, path, headers, body))
                if self.delay:
                    await asyncio.sleep(self.delay)
                status = self.answers.pop(0) if self.answers else 200
                extra = b"Location: http://127.0.0.1:1/\r\n" if 300 <= status < 400 else b""
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n".encode() + extra + b"\r\nok"
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    server = await asyncio.start_server(found.serve, "127.0.0.1", 0)
    found.server = server
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
