"""What the event bus adds to a ``tools/call``: the same in-process gateway with the bus off, on
in-process (memory), and on through Redis Streams, in one run.

    .venv/bin/python bench/events.py [--rounds 15] [--calls 5000] [--redis-url URL] [--check]

Each case is a started :class:`~catalyst_mcp.app.Gateway` (audit off, metrics on, no packs, the
local user; the garbage collector settled as ``catalyst serve`` settles it) over an in-process
echo tool; a round calls ``McpServer.handle("tools/call")``
``--calls`` times, yielding to the event loop after each call (a real call waits for its
socket: the bus's pump and consumers get their turn there too). A round ends only once every
event of the round has been handed on *and* counted by the metrics consumer (with Redis: written
with XADD, read back through its consumer group and acknowledged), so the time per call is all
the bus costs, consumers included. The cases take turns every round (the order reversed every
other round). The table gives, per case, the median and the least over rounds of the mean per
call, and the median over rounds of its difference from the bus off in the same round (which
cancels the drift of a machine shared with other work). The aim: a few µs per call in-process.

Redis: ``--redis-url`` (default ``redis://127.0.0.1:6379/0``), on a stream key of its own
(``catalyst-bench:<random>:events``, deleted at the end); the row is left out when Redis cannot
be reached. It is a report: it exits 0 unless ``--check`` is given and in-process adds more
than the target.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.settings import Settings

TARGET_US = 5.0
TOOL = "echo__say"


class Echo(Provider):
    """A provider whose tool answers at once (no I/O: only the pipeline is measured)."""

    def __init__(self) -> None:
        super().__init__("echo", "echo")
        self._tools = [{"name": "say", "inputSchema": {"type": "object"}}]

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return self._tools if kind == "tools" else []

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {"content": [{"type": "text", "text": "ok"}]}

    def health(self) -> dict[str, Any]:
        return {"name": self.name, "status": "ready"}


def gateway(tmp: Path, events: dict[str, Any], redis_url: str | None = None) -> Gateway:
    data: dict[str, Any] = {
        "audit": {"enabled": False},
        "packs": {"path": None},
        "workflows": {"path": None},
        "rules": {"path": None},
        "ui": {"enabled": False},
        "storage": {"url": f"sqlite+aiosqlite:///{tmp / 'bench.db'}"},
        "events": events,
    }
    if redis_url is not None:
        data["redis"] = {"url": redis_url}
    return Gateway(Settings.model_validate(data), [Echo()])


async def per_call_us(gw: Gateway, calls: int) -> tuple[float, float]:
    """(CPU µs, wall-clock µs) per call of one round."""
    identity = Identity()
    params = {"name": TOOL, "arguments": {"id": 42}}
    handle = gw.server.handle
    events = gw.events
    seen = events.stats.events if events is not None else None
    before = seen["call.finished"] if seen is not None else 0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        ctx = CallContext(
            era="modern", protocol_version="2026-07-28", method="tools/call", identity=identity
        )
        await handle("tools/call", params, ctx)
        await asyncio.sleep(0)
    if seen is not None:  # until every event of the round is handed on and consumed
        while seen["call.finished"] - before < calls:
            await asyncio.sleep(0)
    wall = (time.perf_counter() - start) / calls * 1e6
    return (time.process_time() - cpu) / calls * 1e6, wall


def redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


Row = tuple[str, float, float, float, float]


async def measure(rounds: int, calls: int, redis_url: str, tmp: Path) -> list[Row]:
    stream = f"catalyst-bench:{uuid.uuid4().hex}:events"
    cases = {
        "bus off": gateway(tmp / "off", {"enabled": False}),
        "in-process (memory)": gateway(tmp / "memory", {"backend": "memory"}),
    }
    if redis_reachable(redis_url):
        cases["Redis Streams"] = gateway(
            tmp / "redis", {"backend": "redis", "stream": stream}, redis_url
        )
    else:
        print(f"(no Redis at {redis_url}: its row is left out)", file=sys.stderr)
    for path in ("off", "memory", "redis"):
        (tmp / path).mkdir()
    try:
        for gw in cases.values():
            await gw.start()
        Gateway.settle_memory()  # as `catalyst serve` does once started (decision 001)
        for gw in cases.values():  # warm up: caches, first allocations, connections
            await per_call_us(gw, calls)
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        wall: dict[str, list[float]] = {name: [] for name in cases}
        order = list(cases)
        for round_ in range(rounds):
            for name in order if round_ % 2 == 0 else reversed(order):
                used, took = await per_call_us(cases[name], calls)
                cpu[name].append(used)
                wall[name].append(took)
        dropped = {
            name: sum(gw.events.stats.dropped.values()) if gw.events is not None else 0
            for name, gw in cases.items()
        }
        if any(dropped.values()):
            print(f"(events dropped: {dropped})", file=sys.stderr)
        base, base_wall = cpu[order[0]], wall[order[0]]
        return [
            (
                name,
                statistics.median(cpu[name]),
                statistics.median(v - b for v, b in zip(cpu[name], base, strict=True)),
                statistics.median(wall[name]),
                statistics.median(v - b for v, b in zip(wall[name], base_wall, strict=True)),
            )
            for name in cases
        ]
    finally:
        for gw in cases.values():
            if gw.started:
                await gw.stop()
        if "Redis Streams" in cases:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(redis_url)
            await client.delete(stream)
            await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds of every case")
    parser.add_argument("--calls", type=int, default=5000, help="calls per case per round")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="Redis to use")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(measure(args.rounds, args.calls, args.redis_url, Path(tmp)))
    print(f"Event bus: {args.rounds} rounds of {args.calls} in-process tools/call per case\n")
    print(
        "| case | CPU µs per call | added CPU µs | wall µs per call | added wall µs |\n"
        "|---|---:|---:|---:|---:|"
    )
    for name, used, added_cpu, took, added_wall in rows:
        print(f"| {name} | {used:.1f} | {added_cpu:+.1f} | {took:.1f} | {added_wall:+.1f} |")
    print(
        "\n(medians over rounds; 'added' is the median of each round's difference from the "
        "bus off in the same round; CPU is this process's: Redis's own work is not in it)"
    )
    added = next(row[2] for row in rows if row[0].startswith("in-process"))
    verdict = "met" if added <= TARGET_US else "MISSED"
    print(f"\naim: at most {TARGET_US:g} µs of CPU added in-process: {verdict} ({added:.1f} µs)")
    return 1 if args.check and added > TARGET_US else 0


if __name__ == "__main__":
    raise SystemExit(main())
