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

import httpx2
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
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{base}/ready?strict").status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert gateway.proc.poll() is None, "catalyst serve exited during start-up"
            assert time.monotonic() < deadline, "catalyst serve did not become ready"
            time.sleep(0.05)
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
