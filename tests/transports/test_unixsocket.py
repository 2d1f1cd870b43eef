"""Serving on a Unix domain socket: the file's mode, what may already be at the path, removal,
and the gateway served over it (HTTP and WebSocket) in-process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import orjson
import pytest
from websockets.asyncio.client import unix_connect

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import Settings
from catalyst_mcp.transports.serving import HttpServer, ServerError
from catalyst_mcp.transports.unixsocket import UnixSocket, parse_mode
from tests.fakes import FakeProvider, modern_headers, modern_request
from tests.live import start

pytestmark = pytest.mark.network


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def stale_socket(path: Path) -> None:
    """A socket file nobody listens on, as a process that died leaves it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


@pytest.mark.parametrize(
    ("text", "mode"), [("600", 0o600), ("0600", 0o600), ("0o660", 0o660), ("0777", 0o777)]
)
def test_modes_are_octal(text: str, mode: int) -> None:
    assert parse_mode(text) == mode


@pytest.mark.parametrize("text", ["", "rw", "0800", "4755x", "1777", "07777"])
def test_what_is_not_a_mode_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="mode"):
        parse_mode(text)


def test_the_socket_is_owner_only_by_default_and_removed_after(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    unix = UnixSocket(path)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    assert mode_of(path) == 0o600
    unix.remove()
    assert not path.exists()


def test_another_mode_may_be_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    unix = UnixSocket(path, 0o660)
    try:
        assert mode_of(path) == 0o660
    finally:
        unix.remove()


def test_a_stale_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    stale_socket(path)
    unix = UnixSocket(path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(path))  # the stale one would refuse: this one listens
    finally:
        unix.remove()


def test_a_file_that_is_not_a_socket_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    path.write_text("precious", encoding="utf-8")
    with pytest.raises(ServerError, match="not a socket"):
        UnixSocket(path)
    assert path.read_text(encoding="utf-8") == "precious"


def test_a_socket_in_use_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    first = UnixSocket(path)
    try:
        with pytest.raises(ServerError, match="another server is listening"):
            UnixSocket(path)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        first.remove()


def test_removal_spares_a_path_taken_by_someone_else(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    unix = UnixSocket(path)
    path.unlink()
    path.write_text("someone else's", encoding="utf-8")
    unix.remove()
    assert path.read_text(encoding="utf-8") == "someone else's"


def test_a_path_too_long_says_so(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 120)
    with pytest.raises(ServerError, match="too long"):
        UnixSocket(path)


def test_a_missing_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="No such file or directory"):
        UnixSocket(tmp_path / "nowhere" / "gw.sock")


@contextlib.asynccontextmanager
async def gateway_on(path: Path) -> AsyncIterator[Gateway]:
    gateway = Gateway(Settings.model_validate({"gateway": {"uds": str(path)}}), [FakeProvider()])
    unix = UnixSocket(path)
    server = HttpServer(gateway.asgi, graceful_seconds=2)
    task = await start(server, unix.sock)
    try:
        assert server.paths == [str(path)]
        yield gateway
    finally:
        server.stop()
        async with asyncio.timeout(10):
            await task
        unix.remove()


async def test_the_gateway_serves_http_and_websocket_over_it(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    async with gateway_on(path):
        transport = httpx2.AsyncHTTPTransport(uds=str(path))
        async with httpx2.AsyncClient(transport=transport, base_url="http://localhost") as client:
            message = modern_request("tools/list")
            response = await client.post("/mcp", json=message, headers=modern_headers(message))
            assert response.status_code == 200
            assert "fake__echo" in [t["name"] for t in response.json()["result"]["tools"]]
            # any Host passes: no browser reaches a Unix socket, a proxy sends its own name
            proxied = await client.post(
                "/mcp", json=message, headers={**modern_headers(message), "host": "mcp.example"}
            )
            assert proxied.status_code == 200
        async with unix_connect(str(path), "ws://localhost/ws", subprotocols=["mcp"]) as ws:
            call = {"name": "fake__echo", "arguments": {"text": "over a unix socket"}}
            await ws.send(orjson.dumps(modern_request("tools/call", call, request_id=1)).decode())
            answer = orjson.loads(await ws.recv())
        assert answer["result"]["content"][0]["text"] == "over a unix socket"
    assert not path.exists()
