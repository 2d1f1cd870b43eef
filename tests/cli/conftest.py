"""Fixtures for CLI tests: one real SDK upstream server per test module, and a dead URL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from catalyst_mcp.providers import Provider
from tests.conftest import free_port, start_upstream_http
from tests.live import LiveGateway, live_gateway


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    """The SDK test server over Streamable HTTP, shared by a module's tests; its MCP URL."""
    port = free_port()
    proc = start_upstream_http(port)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.stop()


@pytest.fixture
def dead_url() -> str:
    """An MCP URL on a loopback port where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/mcp"


class ThreadedGateway:
    """A whole gateway on a loopback port, served by its own event loop in a thread, so that
    blocking code (a pty, CliRunner) can talk to it from the test's thread."""

    def __init__(self, settings: dict[str, Any], providers: Sequence[Provider] = ()) -> None:
        self.settings = settings
        self.providers = providers
        self.live: LiveGateway | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    @property
    def url(self) -> str:
        assert self.live is not None
        return self.live.url

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with live_gateway(self.settings, self.providers) as live:
            self.live = live
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ThreadedGateway:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None or self.live is None:
            raise RuntimeError(f"the gateway did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
