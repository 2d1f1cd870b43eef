"""Running servers: what a stdio server costs to start with and without the bubblewrap sandbox,
what one more per-user (or per-session) process costs in memory, and how long an administrator's
stop, start and restart take (decision 015).

    .venv/bin/python bench/lifecycle.py                  # 10 rounds, Markdown on stdout
    .venv/bin/python bench/lifecycle.py --rounds 20 --json /tmp/lifecycle.json

It drives what the gateway runs, in process: :class:`~catalyst_mcp.upstreams.upstream.Upstream`
for one server, :class:`~catalyst_mcp.upstreams.pool.ProcessPool` for per-user processes and
:class:`~catalyst_mcp.upstreams.serverset.ServerSet` for the administrator's actions, against two
stdio servers from ``tests/fixtures``: the lean stdlib server (``lean_server.py``) and the
official SDK's ``MCPServer`` (``env_server.py``).

* **start**: ``Upstream.start()`` until ready (process start, ``initialize``, the lists), plain
  and under ``sandbox.enabled`` (network on; off adds a network namespace), median and p90.
* **memory**: per-user processes started for 8 users, then the memory of their process groups
  from ``/proc/PID/smaps_rollup``: RSS (what ``ps`` shows, shared pages counted in each) and PSS
  (shared pages divided among their users: what one more process really adds), per process,
  plain and sandboxed (bwrap's own two processes included).
* **actions**: ``ServerSet.stop_server``, ``start_server`` and ``restart_server`` of an idle
  server (stop waits for the process to be gone; start and restart for the new one to be ready).

Needs bwrap for the sandboxed rows (they are left out without it) and Linux ``/proc``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from catalyst_mcp.context import CallContext, Identity  # noqa: E402
from catalyst_mcp.registry import Registry  # noqa: E402
from catalyst_mcp.security.injection import SecretInjector  # noqa: E402
from catalyst_mcp.settings import ServerConfig, Settings  # noqa: E402
from catalyst_mcp.upstreams.pool import ProcessPool  # noqa: E402
from catalyst_mcp.upstreams.sandbox import BWRAP  # noqa: E402
from catalyst_mcp.upstreams.serverset import ServerSet  # noqa: E402
from catalyst_mcp.upstreams.upstream import Upstream  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
SERVERS = {
    "lean": [str(FIXTURES / "lean_server.py")],
    "sdk": [str(FIXTURES / "env_server.py")],
}
USERS = 8


def entry(name: str, sandboxed: bool, **extra: Any) -> dict[str, Any]:
    return {
        "command": sys.executable,
        "args": SERVERS[name],
        "ping_interval_seconds": 0,
        "sandbox": {"enabled": sandboxed},
        **extra,
    }


def ctx(user: str) -> CallContext:
    return CallContext(
        era="modern",
        protocol_version="2026-07-28",
        method="tools/call",
        identity=Identity(subject=user, kind="user"),
    )


async def start_once(name: str, sandboxed: bool) -> float:
    config = ServerConfig.model_validate(entry(name, sandboxed))
    upstream = Upstream(name, name, config, 30.0)
    began = time.perf_counter()
    await upstream.start()
    await upstream.wait_settled(30)
    took = time.perf_counter() - began
    ready = upstream.status == "ready"
    await upstream.stop()
    if not ready:
        raise RuntimeError(f"{name} did not start: {upstream.last_error}")
    return took


def group_memory(pgid: int) -> tuple[int, int, int]:
    """(processes, RSS kB, PSS kB) of every process in process group ``pgid``."""
    count = rss = pss = 0
    for entry_ in os.listdir("/proc"):
        if not entry_.isdigit():
            continue
        try:
            if os.getpgid(int(entry_)) != pgid:
                continue
            with open(f"/proc/{entry_}/smaps_rollup") as rollup:
                for line in rollup:
                    key, _, value = line.partition(":")
                    if key == "Rss":
                        rss += int(value.split()[0])
                    elif key == "Pss":
                        pss += int(value.split()[0])
            count += 1
        except (OSError, ProcessLookupError, ValueError):
            continue
    return count, rss, pss


async def memory(name: str, sandboxed: bool) -> dict[str, float]:
    config = ServerConfig.model_validate(entry(name, sandboxed, sharing="per-user"))
    pool = ProcessPool(name, name, config, 30.0, SecretInjector())
    await pool.start()
    await pool.wait_settled(30)
    try:
        for n in range(USERS):
            await pool.call("tools/call", {"name": "whoami", "arguments": {}}, ctx(f"u{n}"))
        totals = [0, 0, 0]
        for instance in pool.instances.values():
            pid = instance.upstream.health()["pid"]
            for i, value in enumerate(group_memory(pid)):
                totals[i] += value
        return {
            "processes_per_instance": totals[0] / USERS,
            "rss_mib": totals[1] / USERS / 1024,
            "pss_mib": totals[2] / USERS / 1024,
        }
    finally:
        await pool.stop()


async def actions(rounds: int) -> dict[str, list[float]]:
    registry = Registry()
    servers = ServerSet(registry, 30.0, SecretInjector())
    servers.load(Settings.model_validate({"servers": {"lean": entry("lean", False)}}))
    await registry.start(30)
    took: dict[str, list[float]] = {"stop": [], "start": [], "restart": []}
    try:
        for _ in range(rounds):
            for verb, action in (
                ("stop", servers.stop_server),
                ("start", servers.start_server),
                ("restart", servers.restart_server),
            ):
                began = time.perf_counter()
                await action("lean", "bench")
                took[verb].append(time.perf_counter() - began)
    finally:
        await servers.close()
        await registry.stop()
    return took


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    options = parser.parse_args()
    sandbox = [False, True] if _bwrap() else [False]
    results: dict[str, Any] = {"start": {}, "memory": {}, "actions": {}}
    for name in SERVERS:
        for boxed in sandbox:
            label = f"{name}{' sandboxed' if boxed else ''}"
            print(f"start: {label}", file=sys.stderr)
            times = [await start_once(name, boxed) for _ in range(options.rounds)]
            results["start"][label] = times
            print(f"memory: {label}", file=sys.stderr)
            results["memory"][label] = await memory(name, boxed)
    print("actions", file=sys.stderr)
    results["actions"] = await actions(options.rounds)

    print(f"## Running servers ({options.rounds} rounds; {os.cpu_count()} CPUs)\n")
    print("| server | start median (ms) | start p90 (ms) |")
    print("|---|---|---|")
    for label, times in results["start"].items():
        print(f"| {label} | {statistics.median(times) * 1000:.0f} | {p90(times) * 1000:.0f} |")
    print(f"\n| per-user process ({USERS} users) | processes each | RSS (MiB) | PSS (MiB) |")
    print("|---|---|---|---|")
    for label, mem in results["memory"].items():
        print(
            f"| {label} | {mem['processes_per_instance']:.0f} | {mem['rss_mib']:.1f} "
            f"| {mem['pss_mib']:.1f} |"
        )
    print("\n| action (lean server, idle) | median (ms) | p90 (ms) |")
    print("|---|---|---|")
    for verb, times in results["actions"].items():
        print(f"| {verb} | {statistics.median(times) * 1000:.0f} | {p90(times) * 1000:.0f} |")
    if options.json is not None:
        options.json.write_text(json.dumps(results, indent=2))


def _bwrap() -> bool:
    import shutil

    return shutil.which(BWRAP) is not None


if __name__ == "__main__":
    asyncio.run(main())
