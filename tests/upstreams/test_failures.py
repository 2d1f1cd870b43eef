"""Failure behaviour with real upstream processes: crashes mid-call, restarts with backoff,
per-call timeouts (with cancellation sent upstream) and the circuit breaker. The gateway runs
on a real loopback port in the test's event loop; clients are the official SDK client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as t
import pytest
import pytest_asyncio
from mcp import Client, MCPError
from mcp.client.subscriptions import ToolsListChanged

from tests.conftest import (
    EXTRA_UPSTREAM,
    PYTHON,
    Process,
    free_port,
    stdio_upstream,
    wait_for_port,
)
from tests.live import LiveGateway, live_gateway, poll

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

MODERN = "2026-07-28"


def client(gw: LiveGateway, mode: str = MODERN, **kw: Any) -> Client:
    return Client(gw.url, mode=mode, cache=None, read_timeout_seconds=20, **kw)


def error_text(outcome: Any) -> str:
    """The message of a failed call, whether it came as a tool error or a JSON-RPC error."""
    if isinstance(outcome, MCPError):
        return outcome.message
    assert outcome.is_error, outcome
    text: str = outcome.content[0].text
    return text


async def call(c: Client, tool: str, arguments: dict[str, Any] | None = None) -> Any:
    try:
        return await c.call_tool(tool, arguments or {})
    except MCPError as exc:
        return exc


async def ready_report(gw: LiveGateway) -> dict[str, Any]:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{gw.base}/ready")
    report: dict[str, Any] = response.json()
    return report


def cancelled(marker: Path) -> bool:
    """Whether ``sleep_marked`` wrote its cancellation marker (completely)."""
    return marker.exists() and marker.read_text() == "cancelled"


def server_in(report: dict[str, Any], name: str) -> dict[str, Any]:
    (server,) = [s for s in report["servers"] if s["name"] == name]
    return server


# ---- a stdio upstream that crashes mid-call ------------------------------------------------


class Notifications:
    """Collects list_changed notifications a legacy client receives on its GET stream."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def __call__(self, message: Any) -> None:
        if isinstance(message, t.ToolListChangedNotification):
            self.methods.append("notifications/tools/list_changed")


@pytest.mark.parametrize("era", ["auto", "legacy"])
async def test_stdio_crash_mid_call(extra_upstream_http: str, era: str) -> None:
    config = {
        "servers": {
            "io": stdio_upstream(EXTRA_UPSTREAM, era=era, restart_initial_seconds=1.0),
            "up": {"url": extra_upstream_http},
        }
    }
    async with live_gateway(config) as gw:
        legacy_notes = Notifications()
        async with (
            client(gw) as modern,
            client(gw, "legacy", message_handler=legacy_notes) as legacy,
            modern.listen(tools_list_changed=True) as subscription,
        ):
            events: list[Any] = []

            async def collect() -> None:
                async for event in subscription:
                    events.append(event)

            collector = asyncio.create_task(collect())
            crashed = await call(modern, "io__crash")
            text = error_text(crashed)
            assert text.startswith("io ")
            assert "exit code 3" in text
            assert "Traceback" not in text

            failed = await poll(
                lambda: _failed(gw, "io"), timeout=10, what="io reported failed by /ready"
            )
            report = await ready_report(gw)
            assert report["status"] == "degraded"
            io = server_in(report, "io")
            assert io["status"] in ("failed", "starting")  # "starting": already retrying
            assert "exit code 3" in io["error"]
            assert "exit code 3" in failed["error"]

            still = await modern.call_tool("up__echo", {"text": "still here"})
            assert still.content[0].text == "still here"  # type: ignore[union-attr]
            down = await call(legacy, "io__echo", {"text": "x"})
            assert "io is unavailable" in error_text(down)

            back = await poll(
                lambda: _ready_again(gw, "io"), timeout=20, what="io restarted by itself"
            )
            assert back["restarts"] >= 1
            assert "error" not in back
            again = await legacy.call_tool("io__echo", {"text": "back"})
            assert again.content[0].text == "back"  # type: ignore[union-attr]

            await poll(lambda: len(events) >= 2, timeout=10, what="modern list_changed")
            assert all(isinstance(e, ToolsListChanged) for e in events)
            await poll(
                lambda: len(legacy_notes.methods) >= 2, timeout=10, what="legacy list_changed"
            )
            collector.cancel()
            tools = [tool.name for tool in (await legacy.list_tools()).tools]
            assert "io__echo" in tools and "up__echo" in tools


def _failed(gw: LiveGateway, name: str) -> dict[str, Any] | None:
    server = gw.server(name)
    return server if server["status"] == "failed" and "error" in server else None


def _ready_again(gw: LiveGateway, name: str) -> dict[str, Any] | None:
    server = gw.server(name)
    return server if server["status"] == "ready" and server["restarts"] >= 1 else None


# ---- an HTTP upstream that crashes and is started again ------------------------------------


@pytest.mark.parametrize("era", ["auto", "legacy"])
async def test_http_upstream_crash_and_reconnect(era: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    first = Process([PYTHON, str(EXTRA_UPSTREAM), "http", str(port)])
    second: Process | None = None
    try:
        wait_for_port(port)
        config = {
            "servers": {
                "h": {
                    "url": url,
                    "era": era,
                    "restart_initial_seconds": 0.2,
                    "restart_max_seconds": 0.5,
                }
            }
        }
        async with live_gateway(config) as gw, client(gw, "legacy") as c:
            crashed = await call(c, "h__crash")
            text = error_text(crashed)
            assert text.startswith("h")
            assert "Traceback" not in text
            await poll(lambda: first.proc.poll() is not None, what="the upstream exited")
            await poll(lambda: _failed(gw, "h"), timeout=10, what="h reported failed")
            down = await call(c, "h__echo", {"text": "x"})
            assert "h is unavailable" in error_text(down)

            second = Process([PYTHON, str(EXTRA_UPSTREAM), "http", str(port)])
            back = await poll(lambda: _ready_again(gw, "h"), timeout=20, what="h reconnected")
            assert back["era"] == ("legacy" if era == "legacy" else "modern")
            again = await c.call_tool("h__echo", {"text": "back"})
            assert again.content[0].text == "back"  # type: ignore[union-attr]
    finally:
        first.stop()
        if second is not None:
            second.stop()


# ---- per-call timeouts and the circuit breaker ---------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slow_gw(extra_upstream_http: str) -> AsyncIterator[LiveGateway]:
    short = {"timeout_seconds": 0.5}
    config = {
        "servers": {
            "up": {"url": extra_upstream_http, **short},
            "old": {"url": extra_upstream_http, "era": "legacy", **short},
            "io": stdio_upstream(EXTRA_UPSTREAM, **short),
            "oldio": stdio_upstream(EXTRA_UPSTREAM, era="legacy", **short),
            "brk": {
                "url": extra_upstream_http,
                "timeout_seconds": 0.3,
                "breaker_failures": 2,
                "breaker_reset_seconds": 1.0,
            },
        }
    }
    async with live_gateway(config) as live:
        yield live


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("mode", [MODERN, "legacy"])
async def test_timeout_is_a_clear_error_and_cancels_upstream(
    slow_gw: LiveGateway, tmp_path: Path, mode: str
) -> None:
    namespaces = ["up", "old", "io", "oldio"]
    async with client(slow_gw, mode) as c:
        outcomes = await asyncio.gather(
            *(
                call(c, f"{ns}__sleep_marked", {"seconds": 30, "marker": str(tmp_path / ns)})
                for ns in namespaces
            )
        )
        for ns, outcome in zip(namespaces, outcomes, strict=True):
            assert not isinstance(outcome, MCPError), outcome
            assert error_text(outcome) == f"{ns} did not answer tools/call within 0.5s"
        for ns in namespaces:
            await poll(
                lambda ns=ns: cancelled(tmp_path / ns), timeout=10, what=f"{ns} was cancelled"
            )
        echoed = await asyncio.gather(
            *(c.call_tool(f"{ns}__echo", {"text": ns}) for ns in namespaces)
        )
    assert [r.content[0].text for r in echoed] == namespaces  # type: ignore[union-attr]
    assert all(slow_gw.server(ns)["status"] == "ready" for ns in namespaces)
    # slow, not hung: each answered the probe that followed its timeout, so none was restarted
    assert all(slow_gw.server(ns)["restarts"] == 0 for ns in namespaces)


@pytest.mark.asyncio(loop_scope="module")
async def test_circuit_breaker_opens_and_recovers(slow_gw: LiveGateway) -> None:
    async with client(slow_gw, "legacy") as c:
        for _ in range(2):
            timed_out = await call(c, "brk__sleep", {"seconds": 5})
            assert "did not answer tools/call within 0.3s" in error_text(timed_out)
        assert slow_gw.server("brk")["circuit"] == "open"
        assert server_in(await ready_report(slow_gw), "brk")["circuit"] == "open"
        refused = await call(c, "brk__echo", {"text": "x"})
        assert "brk is failing repeatedly (circuit open); retry in" in error_text(refused)

        await poll(
            lambda: slow_gw.server("brk")["circuit"] == "half-open", timeout=10, what="half-open"
        )
        trial = await c.call_tool("brk__echo", {"text": "trial"})
        assert trial.content[0].text == "trial"  # type: ignore[union-attr]
        assert slow_gw.server("brk")["circuit"] == "closed"
        assert slow_gw.server("brk")["status"] == "ready"
