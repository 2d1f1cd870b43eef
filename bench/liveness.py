"""Upstream liveness: how long a hung stdio server keeps a gateway's calls from running, and what
probing costs (decision 008).

    .venv/bin/python bench/liveness.py                  # 5 rounds, Markdown on stdout
    .venv/bin/python bench/liveness.py --rounds 10 --json /tmp/liveness.json

It drives :class:`catalyst_mcp.upstreams.upstream.Upstream` in process (what the gateway runs)
against two stdio servers from ``tests/fixtures``: the lean stdlib server (``hang_server.py``)
and the official SDK's ``MCPServer`` (``hang_sdk_server.py``). Per round and server:

* **start**: ``Upstream.start()`` until ready: process start, handshake (``server/discover``,
  and ``initialize`` for the legacy lean server) and the lists.
* **hang → next call**: a tool that blocks the whole server (``hang``, ``block``) is called with
  ``timeout_seconds`` 1 s (lean) or 3 s (SDK); when it has timed out, ``echo`` is called at once.
  The clock runs from the timeout error to the echo's answer. Its parts: the **verdict** (the
  probe after the timeout, ``ping_timeout_seconds`` = 0.3 s, when the server is hung) and the
  **restart** (from the kill to the new process ready, taken around ``Liveness.restart``).
* **probe**: one liveness probe of an idle server (``ping`` or ``server/discover``), round trip
  and the gateway's CPU per probe (``time.process_time`` over 200 probes).

And once: the cost a call pays for all this, the one attribute test (``timeit``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from catalyst_mcp.context import CallContext  # noqa: E402
from catalyst_mcp.errors import UpstreamTimeout  # noqa: E402
from catalyst_mcp.settings import ServerConfig  # noqa: E402
from catalyst_mcp.upstreams.upstream import Upstream  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
SERVERS = {
    # name: (script, args, blocking tool, call timeout)
    "lean": (FIXTURES / "hang_server.py", [], "hang", 1.0),
    "sdk": (FIXTURES / "hang_sdk_server.py", ["stdio"], "block", 3.0),
}
PING_TIMEOUT = 0.3
PROBES = 200


def ctx() -> CallContext:
    return CallContext(era="modern", protocol_version="2026-07-28", method="tools/call")


async def one_round(name: str) -> dict[str, float]:
    script, args, blocking, timeout = SERVERS[name]
    config = ServerConfig(
        command=sys.executable,
        args=[str(script), *args],
        timeout_seconds=timeout,
        ping_timeout_seconds=PING_TIMEOUT,
        ping_interval_seconds=0,
    )
    up = Upstream(name, name, config, 60.0)
    began = time.perf_counter()
    await up.start()
    await up.wait_settled(30)
    if up.status != "ready":
        raise RuntimeError(f"{name} did not start: {up.health()}")
    start = time.perf_counter() - began
    try:
        session = up.session
        assert session is not None
        cpu = time.process_time()
        trips = []
        for _ in range(PROBES):
            t0 = time.perf_counter()
            await session.ping(5.0)
            trips.append(time.perf_counter() - t0)
        probe_cpu = (time.process_time() - cpu) / PROBES

        restart: list[float] = []
        original: Callable[[Any, str], Awaitable[None]] = up.liveness.restart

        async def timed(dead: Any, cause: str) -> None:
            t0 = time.perf_counter()
            await original(dead, cause)
            restart.append(time.perf_counter() - t0)

        up.liveness.restart = timed  # type: ignore[assignment]
        try:
            await up.call("tools/call", {"name": blocking, "arguments": {}}, ctx())
        except UpstreamTimeout:
            pass
        else:
            raise RuntimeError(f"{name}: {blocking} did not time out")
        t0 = time.perf_counter()
        await up.call("tools/call", {"name": "echo", "arguments": {"text": "x"}}, ctx())
        next_call = time.perf_counter() - t0
        if up.restarts != 1 or not restart:
            raise RuntimeError(f"{name}: expected one restart, health {up.health()}")
    finally:
        await up.stop()
    return {
        "start_ms": start * 1000,
        "next_call_ms": next_call * 1000,
        "verdict_ms": (next_call - restart[0]) * 1000,
        "restart_ms": restart[0] * 1000,
        "probe_us": statistics.median(trips) * 1e6,
        "probe_cpu_us": probe_cpu * 1e6,
    }


def gate_test_ns() -> float:
    """What a call pays: ``if self.liveness.gate is not None`` on a live upstream."""
    up = Upstream("x", "x", ServerConfig(command="unused"), 1.0)
    runs = 2_000_000
    best = min(timeit.repeat(lambda: up.liveness.gate is not None, number=runs, repeat=5))
    empty = min(timeit.repeat(lambda: None, number=runs, repeat=5))
    return (best - empty) / runs * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in SERVERS}
    for round_no in range(options.rounds):
        for name in SERVERS:
            print(f"round {round_no + 1}: {name}", file=sys.stderr)
            results[name].append(asyncio.run(one_round(name)))
    gate = gate_test_ns()
    rows = [
        ("start (spawn, handshake, lists)", "start_ms", "ms"),
        ("hang → next call answered", "next_call_ms", "ms"),
        ("… verdict (probe after the timeout)", "verdict_ms", "ms"),
        ("… restart (kill → new process ready)", "restart_ms", "ms"),
        ("probe round trip (idle server)", "probe_us", "µs"),
        ("probe CPU in the gateway", "probe_cpu_us", "µs"),
    ]
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"{options.rounds} rounds; median (min-max); ping_timeout_seconds {PING_TIMEOUT}; "
        f"load average {load} on {os.cpu_count()} cores at the end\n"
    )
    print("| | lean stdio | SDK stdio |")
    print("|---|--:|--:|")
    for label, key, unit in rows:
        cells = []
        for name in SERVERS:
            values = [r[key] for r in results[name]]
            median = statistics.median(values)
            cells.append(f"{median:.1f} {unit} ({min(values):.1f}-{max(values):.1f})")
        print(f"| {label} | {' | '.join(cells)} |")
    print(f"\nA call's share: the gate test costs {gate:.0f} ns.")
    if options.json:
        options.json.write_text(json.dumps({"rounds": results, "gate_ns": gate}, indent=2))


if __name__ == "__main__":
    main()
