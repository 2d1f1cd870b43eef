"""Fixtures for CLI tests: one real SDK upstream server per test module, and a dead URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import free_port, start_upstream_http


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
