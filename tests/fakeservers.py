"""In-process stand-ins for configured servers: a ``servers:`` entry ``{command: fake, args:
[tool, ...]}`` becomes a :class:`FakeServer` listing those tools, built by :class:`FakeServers`
(a :data:`~catalyst_mcp.upstreams.serverset.Builder`)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.settings import ServerConfig
from tests.fakes import FakeProvider, tool


def entry(*tools: str, **extra: Any) -> dict[str, Any]:
    """A ``servers:`` entry served by a :class:`FakeServer` with these tools."""
    return {"command": "fake", "args": list(tools), **extra}


class FakeServer(FakeProvider):
    """Lists the tools its entry's ``args`` name (``wait`` blocks until :attr:`release`);
    :meth:`drain` really waits for its calls; :meth:`wait_settled` waits for :attr:`settled`
    (set at once unless ``hold`` is given)."""

    def __init__(self, name: str, namespace: str, config: ServerConfig, hold: bool = False):
        super().__init__(
            name,
            namespace,
            tools=[tool(t) for t in config.args],
            resources=[],
            templates=[],
            prompts=[],
        )
        self.config = config
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.settled = asyncio.Event()
        if not hold:
            self.settled.set()
        self.drained = False

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        if self.stopped:
            raise AssertionError(f"{self.name} was called after it was stopped")
        self.running += 1
        self.idle.clear()
        try:
            return await super().call(method, params, ctx)
        finally:
            self.running -= 1
            if not self.running:
                self.idle.set()

    async def drain(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.idle.wait()
        self.drained = True

    async def wait_settled(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.settled.wait()


class FakeServers:
    """Builds a :class:`FakeServer` per entry and remembers each (``hold``: new servers wait
    for their ``settled`` event before they count as started)."""

    def __init__(self) -> None:
        self.built: list[FakeServer] = []
        self.hold = False

    def __call__(self, name: str, namespace: str, config: ServerConfig) -> FakeServer:
        server = FakeServer(name, namespace, config, hold=self.hold)
        self.built.append(server)
        return server

    def names(self) -> list[str]:
        return [server.name for server in self.built]
