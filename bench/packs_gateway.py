"""The gateway side of the pack benchmark: start ``catalyst serve`` on a pack folder, and talk
to it over HTTP with one ``httpx2.AsyncClient``.

* :func:`start_gateway` writes a config (127.0.0.1, a free port, ``packs.path``,
  ``packs.watch``), starts the gateway through ``procs.Processes`` and waits until ``/ready``
  says every pack loaded (a pack problem is an error, printed as the gateway reports it).
* :class:`McpHttp` sends modern-era (2026-07-28) requests, self-contained as in
  ``mcpwire.py``, and holds one legacy session whose GET stream delivers list-changed
  notifications, each stamped with ``time.perf_counter()`` on arrival.

Every network wait has a time limit: nothing here can hang the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import orjson
from mcpwire import META, PROTOCOL_VERSION
from packs_gen import TOKEN_ENV
from procs import BenchError, Proc, Processes, free_port, gateway_argv

LEGACY_VERSION = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
STARTUP_TIMEOUT = 90.0  # loading 100 packs takes seconds; the gateway must be up by then


def child_env() -> dict[str, str]:
    """The environment of every process we start: no CATALYST_* overrides, the packs' token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALYST_")}
    env[TOKEN_ENV] = "bench-token"
    return env


def start_gateway(
    procs: Processes, name: str, workdir: Path, packs: Path, *, watch: bool
) -> tuple[Proc, str]:
    """Start ``catalyst serve`` on ``packs``; return it and its MCP URL once it is ready."""
    port = free_port()
    config = workdir / f"{name}.yaml"
    settings = {
        "gateway": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
        "packs": {"path": str(packs), "watch": watch},
        # the packs alone: what auth, RBAC, rate limits and audit add is bench/access.py's
        "audit": {"enabled": False},
        "storage": {"url": f"sqlite+aiosqlite:///{workdir / name}.db"},
    }
    config.write_text(json.dumps(settings, indent=2))  # JSON is YAML
    proc = procs.start(name, gateway_argv(config), env=child_env())
    proc.port = port
    base = f"http://127.0.0.1:{port}"
    wait_ready(proc, base)
    return proc, f"{base}/mcp"


def wait_ready(proc: Proc, base: str, timeout: float = STARTUP_TIMEOUT) -> dict[str, Any]:
    """Poll ``/ready`` until start-up ends; pack problems and early exits are errors."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx2.Client(timeout=2.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise BenchError(
                    f"{proc.name} exited during start-up (code {proc.popen.returncode}):\n"
                    f"{proc.tail()}"
                )
            try:
                report: dict[str, Any] = http.get(f"{base}/ready").json()
            except (httpx2.HTTPError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
                continue
            status = report.get("status")
            if status in ("ready", "degraded"):
                problems = report.get("pack_problems") or []
                if problems:
                    shown = "\n  ".join(problems[:8])
                    more = f"\n  ... {len(problems) - 8} more" if len(problems) > 8 else ""
                    raise BenchError(f"{proc.name}: packs not served:\n  {shown}{more}")
                if status == "degraded":
                    raise BenchError(f"{proc.name} is degraded: {report}")
                return report
            last = f"status {status}"
            time.sleep(0.1)
    raise BenchError(f"{proc.name} not ready after {timeout:.0f}s ({last}):\n{proc.tail()}")


@dataclass
class Event:
    arrived: float  # time.perf_counter() when its data line was read
    message: dict[str, Any]


class McpHttp:
    """One keep-alive HTTP client to a gateway's MCP endpoint (and any other URL)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout),
            limits=httpx2.Limits(max_connections=4, max_keepalive_connections=4),
            trust_env=False,
        )
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.session_id: str | None = None
        self._stream: asyncio.Task[None] | None = None
        self._ids = 0
        self._stream_error: BaseException | None = None

    async def __aenter__(self) -> McpHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stream
        await self.http.aclose()

    # ---- modern era: one self-contained POST per request ------------------------------------

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    async def modern(self, method: str, params: dict[str, Any], name: str | None = None) -> Any:
        """The ``result`` of a modern-era request; a JSON-RPC error is a :class:`BenchError`."""
        body = {
            "jsonrpc": "2.0",
            "id": self._next_id(),
            "method": method,
            "params": {**params, "_meta": META},
        }
        headers = {
            "Content-Type": "application/json",
            "Accept": ACCEPT,
            "MCP-Protocol-Version": PROTOCOL_VERSION,
            "Mcp-Method": method,
        }
        if name is not None:
            headers["Mcp-Name"] = name
        response = await self.http.post(self.url, content=orjson.dumps(body), headers=headers)
        return _result(method, response)

    async def tool_names(self) -> set[str]:
        """Every tool the gateway lists (following ``nextCursor``)."""
        names: set[str] = set()
        params: dict[str, Any] = {}
        for _ in range(1000):
            result = await self.modern("tools/list", params)
            names.update(tool["name"] for tool in result.get("tools", []))
            cursor = result.get("nextCursor")
            if not cursor:
                return names
            params = {"cursor": cursor}
        raise BenchError("tools/list: more than 1000 pages")

    # ---- legacy era: a session and its GET stream of notifications ---------------------------

    async def open_session(self) -> None:
        """``initialize`` a legacy session and open its GET stream (notifications)."""
        init = {
            "jsonrpc": "2.0",
            "id": self._next_id(),
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "catalyst-bench-packs", "version": "1"},
            },
        }
        headers = {"Content-Type": "application/json", "Accept": ACCEPT}
        response = await self.http.post(self.url, content=orjson.dumps(init), headers=headers)
        _result("initialize", response)
        self.session_id = response.headers.get("mcp-session-id")
        if not self.session_id:
            raise BenchError("initialize: the gateway gave no Mcp-Session-Id")
        headers = self._session_headers()
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        response = await self.http.post(self.url, content=orjson.dumps(done), headers=headers)
        if response.status_code not in (200, 202):
            raise BenchError(f"notifications/initialized: HTTP {response.status_code}")
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stream = asyncio.create_task(self._listen(opened))
        async with asyncio.timeout(10):
            await opened

    def _session_headers(self) -> dict[str, str]:
        assert self.session_id is not None
        return {
            "Content-Type": "application/json",
            "Accept": ACCEPT,
            "Mcp-Session-Id": self.session_id,
            "MCP-Protocol-Version": LEGACY_VERSION,
        }

    async def _listen(self, opened: asyncio.Future[None]) -> None:
        headers = {**self._session_headers(), "Accept": "text/event-stream"}
        del headers["Content-Type"]
        timeout = httpx2.Timeout(10.0, read=None)  # the stream is quiet between notifications
        try:
            async with self.http.stream("GET", self.url, headers=headers, timeout=timeout) as r:
                if r.status_code != 200:
                    raise BenchError(f"GET stream: HTTP {r.status_code}: {await r.aread()!r}")
                opened.set_result(None)
                async for line in r.aiter_lines():
                    if line.startswith("data:"):
                        arrived = time.perf_counter()
                        self.events.put_nowait(Event(arrived, orjson.loads(line[5:])))
        except BaseException as exc:
            self._stream_error = exc
            if not opened.done():
                opened.set_exception(exc)
            raise

    def drain(self) -> list[Event]:
        """Notifications received and not yet looked at."""
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    async def wait_for(self, method: str, timeout: float) -> Event | None:
        """The next notification ``method``, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if self._stream is not None and self._stream.done():
                raise BenchError(f"the notification stream ended: {self._stream_error!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                async with asyncio.timeout(min(left, 1.0)):
                    event = await self.events.get()
            except TimeoutError:
                continue
            if event.message.get("method") == method:
                return event


def _result(method: str, response: httpx2.Response) -> Any:
    """The JSON-RPC result of a response (plain JSON, or the last SSE data line)."""
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        lines = [line[5:] for line in text.splitlines() if line.startswith("data:")]
        text = lines[-1] if lines else ""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BenchError(
            f"{method}: HTTP {response.status_code}: not JSON: {text[:300]!r}"
        ) from exc
    if "error" in message or response.status_code != 200:
        raise BenchError(f"{method}: HTTP {response.status_code}: {message.get('error', message)}")
    return message.get("result")
