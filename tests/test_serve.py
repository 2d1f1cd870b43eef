"""``catalyst serve --config`` as a real process: the production entry point (uvloop,
httptools) serves both eras and the legacy SSE transport, and a SIGTERM stops it together
with the stdio servers it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as t
import pytest
import yaml
from mcp import Client
from mcp.client.sse import sse_client

from tests.conftest import EXTRA_UPSTREAM, PYTHON, Process, free_port, stdio_upstream
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
