"""Tool pinning: what it costs a call (nothing: it works when lists change, not per call), and
what checking a list of tools costs (decision 016).

    .venv/bin/python bench/pinning.py                    # Markdown on stdout
    .venv/bin/python bench/pinning.py --rounds 9 --calls 20000 --tools 1000 --json /tmp/p.json

In process, so that nanoseconds are visible: one :class:`catalyst_mcp.app.Gateway` (registry,
access pipeline, protocol layer: what ``catalyst serve`` runs behind its HTTP server) over two
servers answered by an instant in-memory transport, identical but for their ``pin``:
``pinned`` (``strict``, its tools approved at first contact) and ``plain`` (``off``).

* **per call**: each round runs ``--calls`` ``tools/call`` of ``echo`` through
  ``McpServer.handle`` on one server, then on the other (the order swaps every round); the table
  gives the median of the rounds of wall time per call, and pinned minus plain. Also, with
  ``timeit``, the one step a call takes that pinning touches: ``Registry.resolve`` of a listed
  name (a held or unknown name asks the provider; a listed one never does).
* **checking a list** of ``--tools`` tools shaped like real ones (a 200-300 character
  description, four properties with descriptions, annotations), on a SQLite file (and, with
  ``--pg``, on PostgreSQL at 127.0.0.1:5432, database ``test``): the digests alone; a review of
  the same list again (a reconnect, a refresh); the first contact (every definition written); a
  review after one tool changed (every digest, the server's rows read, one written); approving
  that tool.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from catalyst_mcp.app import Gateway  # noqa: E402
from catalyst_mcp.context import CallContext, Identity  # noqa: E402
from catalyst_mcp.protocol.jsonrpc import Message  # noqa: E402
from catalyst_mcp.protocol.versions import LATEST_LEGACY  # noqa: E402
from catalyst_mcp.settings import Settings  # noqa: E402
from catalyst_mcp.storage.db import Database  # noqa: E402
from catalyst_mcp.storage.migrate import upgrade  # noqa: E402
from catalyst_mcp.trust.digest import digest  # noqa: E402
from catalyst_mcp.trust.pinning import Pinning, ToolPins  # noqa: E402
from catalyst_mcp.upstreams import upstream as upstream_module  # noqa: E402
from catalyst_mcp.upstreams.base import MessageHandler, UpstreamTransport  # noqa: E402

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ECHO = {"name": "echo", "description": "Echo text back.", "inputSchema": {"type": "object"}}


class Instant(UpstreamTransport):
    """A legacy-era server that answers at once: ``echo`` plus ``tools`` filler tools."""

    def __init__(self, server: str, tools: list[dict[str, Any]]) -> None:
        super().__init__(server)
        self.tools = tools
        self.answer = {"content": [{"type": "text", "text": "hi"}]}

    async def open(self) -> None:
        return None

    async def request(
        self,
        message: Message,
        on_related: MessageHandler | None = None,
        headers: dict[str, str] | None = None,
    ) -> Message:
        method = message["method"]
        if method == "initialize":
            result: dict[str, Any] = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {"listChanged": True}},
                "serverInfo": {"name": self.server, "version": "1"},
            }
        elif method == "tools/list":
            result = {"tools": self.tools}
        else:
            result = self.answer
        return {"jsonrpc": "2.0", "id": message["id"], "result": result}

    async def send(self, message: Message) -> None:
        return None

    async def close(self) -> None:
        return None


def realistic_tools(count: int, salt: str = "") -> list[dict[str, Any]]:
    """Tools shaped like real servers' ones."""
    tools = []
    for n in range(count):
        words = " ".join(f"word{(n * 7 + k) % 97}" for k in range(30))
        tools.append(
            {
                "name": f"tool_{n:04d}",
                "title": f"Tool {n}",
                "description": f"Does thing number {n}{salt}. {words}. Returns the result as JSON.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "description": "The object's identifier."},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                        "query": {"type": "string", "description": "Words to search for."},
                        "verbose": {"type": "boolean", "default": False},
                    },
                    "required": ["id"],
                },
                "annotations": {"readOnlyHint": True, "openWorldHint": False},
            }
        )
    return tools


# ---- per call ----------------------------------------------------------------------------------


async def per_call(rounds: int, calls: int, database_url: str) -> dict[str, Any]:
    tools = [ECHO, *realistic_tools(20)]
    original = upstream_module.build_transport
    upstream_module.build_transport = lambda name, config: Instant(name, tools)  # type: ignore[assignment]
    entry = {"url": "http://unused.invalid/mcp", "era": "legacy", "ping_interval_seconds": 0}
    settings = Settings.model_validate(
        {
            "servers": {"pinned": {**entry, "pin": "strict"}, "plain": {**entry, "pin": "off"}},
            "storage": {"url": database_url},
            "audit": {"enabled": False},  # the same for both: no background writes as noise
            "packs": {"path": None},
            "gateway": {"watch_config": False},
        }
    )
    gateway = Gateway(settings)
    await gateway.start()
    results: dict[str, list[float]] = {"pinned": [], "plain": []}  # CPU ns per call
    walls: dict[str, list[float]] = {"pinned": [], "plain": []}
    try:
        for name in ("pinned", "plain"):
            report = gateway.registry.provider(name).health()  # type: ignore[union-attr]
            if report["status"] != "ready" or report.get("heldTools"):
                raise RuntimeError(f"{name} is not ready: {report}")
        ctx = CallContext(era="legacy", protocol_version=LATEST_LEGACY, method="tools/call")
        handle = gateway.server.handle

        async def run(server: str, count: int) -> tuple[float, float]:
            params = {"name": f"{server}__echo", "arguments": {"text": "hi"}}
            cpu, wall = time.process_time_ns(), time.perf_counter_ns()
            for _ in range(count):
                await handle("tools/call", params, ctx)
            return (
                (time.process_time_ns() - cpu) / count,
                (time.perf_counter_ns() - wall) / count,
            )

        for server in results:  # warm-up
            await run(server, calls // 4)
        for round_no in range(rounds):
            order = ["pinned", "plain"] if round_no % 2 == 0 else ["plain", "pinned"]
            for server in order:
                cpu, wall = await run(server, calls)
                results[server].append(cpu)
                walls[server].append(wall)
            print(f"round {round_no + 1}/{rounds}", file=sys.stderr)
        registry = gateway.registry
        best: dict[str, float] = {"pinned": float("inf"), "plain": float("inf")}
        for _ in range(7):  # interleaved, best of 7 each
            for server in best:
                took = timeit.timeit(
                    lambda s=server: registry.resolve("tools", f"{s}__echo"),  # type: ignore[misc]
                    number=200_000,
                )
                best[server] = min(best[server], took / 200_000 * 1e9)
        resolve = best
    finally:
        await gateway.stop()
        upstream_module.build_transport = original
    return {"per_call_ns": results, "wall_ns": walls, "resolve_ns": resolve}


# ---- checking a list -----------------------------------------------------------------------


async def timed(step: Callable[[], Awaitable[Any]], repeat: int = 1) -> float:
    """Median ms of ``repeat`` runs of ``step``."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        await step()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def list_checks(database_url: str, count: int, repeat: int) -> dict[str, float]:
    db = Database(database_url)
    try:
        await upgrade(db)
        pinning = Pinning(db)
        tools = realistic_tools(count)
        out: dict[str, float] = {}
        began = time.perf_counter()
        for _ in range(repeat):
            for tool in tools:
                digest(tool)
        out["digests"] = (time.perf_counter() - began) * 1000 / repeat

        firsts = []
        for _ in range(repeat):  # a new server each time: every one is a first contact
            pins = ToolPins(pinning, f"bench-{uuid.uuid4().hex[:8]}", "strict")
            firsts.append(await timed(lambda p=pins: p.review(tools)))  # type: ignore[misc]
        out["first_contact"] = statistics.median(firsts)

        blob = orjson.dumps(tools)
        fetched = [orjson.loads(blob) for _ in range(repeat * 5)]  # equal, all new objects

        async def review_again() -> None:
            await pins.review(fetched.pop())

        out["same_again"] = await timed(review_again, repeat * 5)

        changes, approvals = [], []
        who = Identity(subject="bench")
        for n in range(repeat):
            changed = [dict(tool) for tool in tools]
            changed[n] = {**changed[n], "description": changed[n]["description"] + f" v{n}"}
            changes.append(await timed(lambda c=changed: pins.review(c)))  # type: ignore[misc]
            if changed[n]["name"] not in pins.held:
                raise RuntimeError("the changed tool was not held back")
            name = changed[n]["name"]
            approvals.append(
                await timed(lambda t=name: pinning.approve(pins.server, [t], who))  # type: ignore[misc]
            )
        out["one_changed"] = statistics.median(changes)
        out["approve_one"] = statistics.median(approvals)
        return out
    finally:
        await db.close()


def pg_available() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


async def pg_database() -> tuple[str, Callable[[], Awaitable[None]]]:
    """A fresh PostgreSQL database for the run, and how to drop it."""
    import asyncpg

    name = f"catalyst_bench_{uuid.uuid4().hex[:8]}"
    admin = PG_URL.replace("+asyncpg", "")
    conn = await asyncpg.connect(admin)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin)
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()

    return PG_URL.rsplit("/", 1)[0] + f"/{name}", drop


async def main_async(options: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="catalyst-pin-bench-"))
    calls = await per_call(
        options.rounds, options.calls, f"sqlite+aiosqlite:///{folder / 'calls.db'}"
    )
    checks = {
        "SQLite": await list_checks(
            f"sqlite+aiosqlite:///{folder / 'lists.db'}", options.tools, options.repeat
        )
    }
    if options.pg and pg_available():
        url, drop = await pg_database()
        try:
            checks["PostgreSQL"] = await list_checks(url, options.tools, options.repeat)
        finally:
            await drop()
    return {"calls": calls, "checks": checks}


def report(data: dict[str, Any], options: argparse.Namespace) -> None:
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"{options.rounds} rounds of {options.calls} calls; lists of {options.tools} tools, "
        f"{options.repeat} runs each; load average {load} on {os.cpu_count()} cores at the end\n"
    )
    print("| one `tools/call` in process | pin: strict | pin: off | pinned - plain |")
    print("|---|--:|--:|--:|")
    for label, key in (("CPU", "per_call_ns"), ("wall time", "wall_ns")):
        per = data["calls"][key]
        pinned, plain = statistics.median(per["pinned"]), statistics.median(per["plain"])
        diffs = sorted(a - b for a, b in zip(per["pinned"], per["plain"], strict=True))
        print(
            f"| {label} per call, median of rounds | {pinned / 1000:.2f} µs | "
            f"{plain / 1000:.2f} µs | {(pinned - plain) / 1000:+.2f} µs |"
        )
        print(
            f"| … paired differences of the rounds: median (min, max) | | | "
            f"{statistics.median(diffs) / 1000:+.2f} µs ({diffs[0] / 1000:+.2f}, "
            f"{diffs[-1] / 1000:+.2f}) |"
        )
    resolve = data["calls"]["resolve_ns"]
    print(
        f"| `Registry.resolve` of a listed name (timeit, best of 7, interleaved) | "
        f"{resolve['pinned']:.0f} ns | {resolve['plain']:.0f} ns | "
        f"{resolve['pinned'] - resolve['plain']:+.0f} ns |"
    )
    print()
    backends = list(data["checks"])
    print(f"| checking a list of {options.tools} tools | " + " | ".join(backends) + " |")
    print("|---|" + "--:|" * len(backends))
    rows = [
        ("digests only (canonical JSON + SHA-256)", "digests"),
        ("the same list again (reconnect, refresh)", "same_again"),
        ("first contact (every definition written)", "first_contact"),
        ("one tool changed (digests, rows read, one written)", "one_changed"),
        ("approving that tool", "approve_one"),
    ]
    for label, key in rows:
        cells = " | ".join(_ms(data["checks"][b][key]) for b in backends)
        print(f"| {label} | {cells} |")


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value >= 0.1 else f"{value * 1000:.0f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds of calls per server")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round and server")
    parser.add_argument("--tools", type=int, default=1000, help="tools in the checked list")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each list check")
    parser.add_argument("--pg", action="store_true", help="also check lists on PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    options = parser.parse_args()
    logging.getLogger("catalyst.pinning").setLevel(logging.ERROR)  # the changes it makes
    data = asyncio.run(main_async(options))
    report(data, options)
    if options.json:
        options.json.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
