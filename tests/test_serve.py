"""``catalyst serve --config`` as a real process: the production entry point (uvloop,
httptools) serves both eras and the legacy SSE transport, and a SIGTERM stops it together
with the stdio servers it started; ``--uds`` serves the same on a Unix domain socket."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as t
import orjson
import pytest
import yaml
from mcp import Client
from mcp.client.sse import sse_client
from websockets.asyncio.client import unix_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import EXTRA_UPSTREAM, PYTHON, Process, free_port, stdio_upstream
from tests.fakes import (
    JSON_HEADERS,
    initialize_request,
    legacy_request,
    modern_headers,
    modern_request,
)
from tests.live import poll

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

CATALYST = [str(Path(PYTHON).parent / "catalyst")]  # the installed console script


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_ready(gateway: Process, base: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx2.get(f"{base}/ready?strict").status_code == 200:
                return
        except httpx2.TransportError:
            pass
        assert gateway.proc.poll() is None, "catalyst serve exited during start-up"
        assert time.monotonic() < deadline, "catalyst serve did not become ready"
        time.sleep(0.05)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Process, str]]:
    port = free_port()
    config = tmp_path / "catalyst.yaml"
    settings = {
        "gateway": {"port": port},
        "servers": {"io": stdio_upstream(EXTRA_UPSTREAM, era="legacy")},
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    gateway = Process([*CATALYST, "serve", "--config", str(config)], cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(gateway, base)
        yield gateway, base
    finally:
        gateway.stop()


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy", "sse"])
async def test_serve_answers_every_era(served: tuple[Process, str], mode: str) -> None:
    _, base = served
    target = sse_client(f"{base}/sse") if mode == "sse" else f"{base}/mcp"
    era = "legacy" if mode == "sse" else mode
    async with Client(target, mode=era, cache=None) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        echoed = await client.call_tool("io__echo", {"text": mode})
    assert "io__echo" in tools
    assert echoed.content[0].text == mode  # type: ignore[union-attr]


async def test_sigterm_stops_the_gateway_and_its_stdio_servers(
    served: tuple[Process, str],
) -> None:
    gateway, _ = served
    upstreams = children_of(gateway.pid)
    assert upstreams, "the stdio server should be a child of the gateway"
    os.kill(gateway.pid, signal.SIGTERM)
    try:
        code = gateway.proc.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail("catalyst serve did not stop on SIGTERM")
    assert code == 0, "a graceful stop on SIGTERM exits 0"
    await poll(lambda: not any(alive(pid) for pid in upstreams), what="the stdio servers stopped")


def test_a_taken_port_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "catalyst.yaml"
        config.write_text(yaml.safe_dump({"gateway": {"port": port}}), encoding="utf-8")
        done = subprocess.run(
            [*CATALYST, "serve", "--config", str(config)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: " in done.stderr
    assert "Traceback" not in done.stderr


def test_auth_turned_on_from_the_environment_protects_every_endpoint(tmp_path: Path) -> None:
    """``CATALYST_AUTH__ENABLED=true catalyst serve``, exactly as the README shows it: nothing
    answers without a token; and a mistyped variable is a warning naming the right one."""
    port = free_port()
    config = tmp_path / "catalyst.yaml"
    config.write_text(yaml.safe_dump({"gateway": {"port": port}}), encoding="utf-8")
    gateway = Process(
        [*CATALYST, "serve", "--config", str(config)],
        env={"CATALYST_AUTH__ENABLED": "true", "CATALYST_AUDIT_ENABLED": "false"},
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{base}/health").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert gateway.proc.poll() is None, "catalyst serve exited during start-up"
            assert time.monotonic() < deadline, "catalyst serve did not start"
            time.sleep(0.05)
        for path in ("/api/v1/secrets", "/api/v1/keys", "/api/v1/audit", "/api/v1/users"):
            assert httpx2.get(f"{base}{path}").status_code == 401, path
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        answer = httpx2.post(
            f"{base}/mcp",
            json=listing,
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert answer.status_code == 401
        assert "WWW-Authenticate" in answer.headers
        assert httpx2.get(f"{base}/ready").json() == {"status": "ready"}  # no details
    finally:
        os.kill(gateway.pid, signal.SIGTERM)
        _, stderr = gateway.proc.communicate(timeout=20)
    assert (
        "CATALYST_AUDIT_ENABLED is not a setting and is ignored; did you mean "
        "CATALYST_AUDIT__ENABLED?" in stderr.decode()
    )


# ---- on a Unix domain socket -----------------------------------------------------------------


def over(path: Path) -> httpx2.Client:
    return httpx2.Client(transport=httpx2.HTTPTransport(uds=str(path)), base_url="http://localhost")


@pytest.fixture
def served_on_uds(tmp_path: Path) -> Iterator[tuple[Process, Path]]:
    """``catalyst serve --uds`` over a stale socket file left behind by a dead gateway."""
    path = tmp_path / "catalyst.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never removed: what a killed process leaves
    config = tmp_path / "catalyst.yaml"
    settings = {
        "gateway": {"max_request_bytes": 2000},
        "servers": {"io": stdio_upstream(EXTRA_UPSTREAM)},
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    gateway = Process([*CATALYST, "serve", "--config", str(config), "--uds", str(path)])
    try:
        deadline = time.monotonic() + 30
        while True:
            # a raw probe first: httpx2 leaks the socket of a refused Unix connection
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                listening = probe.connect_ex(str(path)) == 0
            if listening:
                with contextlib.suppress(httpx2.TransportError), over(path) as client:
                    if client.get("/ready?strict").status_code == 200:
                        break
            assert gateway.proc.poll() is None, "catalyst serve exited during start-up"
            assert time.monotonic() < deadline, "catalyst serve did not become ready"
            time.sleep(0.05)
        yield gateway, path
    finally:
        gateway.stop()


def test_serve_on_a_unix_socket_answers_both_eras(served_on_uds: tuple[Process, Path]) -> None:
    _, path = served_on_uds
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    call = {"name": "io__echo", "arguments": {"text": "uds"}}
    with over(path) as client:
        listed = modern_request("tools/list")
        answer = client.post("/mcp", json=listed, headers=modern_headers(listed)).json()
        assert "io__echo" in [t["name"] for t in answer["result"]["tools"]]
        modern = modern_request("tools/call", call)
        answer = client.post("/mcp", json=modern, headers=modern_headers(modern)).json()
        assert answer["result"]["content"][0]["text"] == "uds"
        init = client.post("/mcp", json=initialize_request(), headers=JSON_HEADERS)
        session = {**JSON_HEADERS, "mcp-session-id": init.headers["mcp-session-id"]}
        legacy = client.post("/mcp", json=legacy_request("tools/call", call), headers=session)
        assert legacy.json()["result"]["content"][0]["text"] == "uds"


async def test_a_websocket_over_the_unix_socket_holds_to_max_request_bytes(
    served_on_uds: tuple[Process, Path],
) -> None:
    _, path = served_on_uds
    async with unix_connect(str(path), "ws://localhost/ws", subprotocols=["mcp"]) as ws:
        call = {"name": "io__echo", "arguments": {"text": "ws"}}
        await ws.send(orjson.dumps(modern_request("tools/call", call, request_id=1)).decode())
        assert orjson.loads(await ws.recv())["result"]["content"][0]["text"] == "ws"
        # 900 characters, 1,800 bytes: the server's byte limit, not a character count, decides
        wide = {"name": "io__echo", "arguments": {"text": "é" * 900}}
        await ws.send(orjson.dumps(modern_request("tools/call", wide, request_id=2)).decode())
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1009


def test_sigterm_removes_the_unix_socket(served_on_uds: tuple[Process, Path]) -> None:
    gateway, path = served_on_uds
    os.kill(gateway.pid, signal.SIGTERM)
    assert gateway.proc.wait(20) == 0
    assert not path.exists()


def test_a_file_in_the_sockets_way_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("keep me", encoding="utf-8")
    done = subprocess.run(
        [*CATALYST, "serve", "--uds", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"error: refusing to serve on {path}: a file that is not a socket is there" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert path.read_text(encoding="utf-8") == "keep me"


class ToolChanges:
    """Counts the tools/list_changed notifications a legacy client gets on its GET stream."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, message: Any) -> None:
        if isinstance(message, t.ToolListChangedNotification):
            self.count += 1


async def test_an_edited_config_reaches_a_connected_client(
    served: tuple[Process, str], tmp_path: Path
) -> None:
    gateway, base = served
    config = tmp_path / "catalyst.yaml"
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    changes = ToolChanges()
    async with Client(
        f"{base}/mcp", mode="legacy", cache=None, read_timeout_seconds=20, message_handler=changes
    ) as client:
        before = {tool.name for tool in (await client.list_tools()).tools}
        io = children_of(gateway.pid)
        settings["servers"]["more"] = stdio_upstream(EXTRA_UPSTREAM)
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        await poll(lambda: changes.count >= 1, timeout=30, what="tools/list_changed")
        after = {tool.name for tool in (await client.list_tools()).tools}
        assert after == before | {name.replace("io__", "more__") for name in before}
        echoed = await client.call_tool("more__echo", {"text": "new"})
        assert echoed.content[0].text == "new"  # type: ignore[union-attr]
        assert set(io) < set(children_of(gateway.pid)), "io was left running as it was"
