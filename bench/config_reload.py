"""Hot reload of catalyst.yaml: from a config write to ``notifications/tools/list_changed``.

    .venv/bin/python bench/config_reload.py [--rounds 10] [--json FILE] [--keep-logs]

One ``catalyst serve --config`` (``gateway.watch_config`` is on by default) serves one stdio
server (``base``, never touched); one legacy session keeps its GET stream open. For each
upstream kind (the lean echo and the official SDK's ``MCPServer``, ``bench/upstream_*.py``), each
round times two edits, each one rewriting the config file in place:

* **add**: one more stdio server; the clock starts just before the file is opened for writing
  and stops when the ``tools/list_changed`` data line is read from the stream; ``tools/list``
  must then show the new server's ``echo`` tool and ``base`` must still run as the same process;
* **remove**: the same server taken out again, timed the same way.

The gateway is left to go idle between edits (a removed server is stopped once its calls are
done). **direct start** is the floor of *add*: this script starts the same server over pipes and
times until it has answered ``server/discover`` and ``tools/list``, which is what the gateway
must wait for too. *add* minus *direct start* is what watching, validating, swapping and
notifying cost. The report is Markdown on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from mcpwire import META, discover_body
from packs_gateway import McpHttp, child_env, wait_ready
from packs_reload import wait_idle
from procs import UPSTREAMS, BenchError, Processes, children_of, free_port, gateway_argv

CHANGED = "notifications/tools/list_changed"
WARMUP_TIMEOUT = 60.0
EDIT_TIMEOUT = 30.0
MIN_GAP = 0.3


def server_entry(kind: str) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(UPSTREAMS[kind][1]), "stdio"]}


class Config:
    """The gateway's config file, rewritten in place for each edit."""

    def __init__(self, path: Path, port: int, workdir: Path) -> None:
        self.path = path
        self.settings: dict[str, Any] = {
            "gateway": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
            "packs": {"path": None},
            "audit": {"enabled": False},
            "storage": {"url": f"sqlite+aiosqlite:///{workdir / 'config-reload.db'}"},
            "servers": {"base": {**server_entry("lean"), "era": "modern"}},
        }
        self.write()

    def write(self) -> None:
        with self.path.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(self.settings, indent=2))  # JSON is YAML
            handle.flush()


async def timed_edit(client: McpHttp, config: Config, change: dict[str, Any] | str) -> float:
    """Apply ``change`` (an entry to add, or a server name to remove); seconds to the
    notification."""
    servers = config.settings["servers"]
    if isinstance(change, str):
        del servers[change]
    else:
        servers.update(change)
    client.drain()
    started = time.perf_counter()
    config.write()
    event = await client.wait_for(CHANGED, EDIT_TIMEOUT)
    if event is None:
        raise BenchError(f"no {CHANGED} within {EDIT_TIMEOUT:.0f}s of a config edit")
    return event.arrived - started


def direct_start(kind: str) -> float:
    """Seconds from starting the server over pipes to its answers to discover + tools/list."""
    tools = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": META}}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(UPSTREAMS[kind][1]), "stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for body in (discover_body(1), orjson.dumps(tools)):
            proc.stdin.write(body + b"\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line or "result" not in orjson.loads(line):
                raise BenchError(f"{kind} stdio server answered {line[:200]!r}")
        return time.perf_counter() - started
    finally:
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def measure(procs: Processes, workdir: Path, rounds: int, log: Any) -> dict[str, Any]:
    port = free_port()
    config = Config(workdir / "catalyst.yaml", port, workdir)
    proc = procs.start("config-gateway", gateway_argv(config.path), env=child_env())
    base_url = f"http://127.0.0.1:{port}"
    wait_ready(proc, base_url)
    base_pid = [pid for pid, _ in children_of(proc.pid)]
    results: dict[str, Any] = {}
    async with McpHttp(f"{base_url}/mcp") as client:
        await client.open_session()
        await wait_idle(proc)
        for kind in ("lean", "sdk"):
            entry = server_entry(kind)
            if kind == "lean":
                entry = {**entry, "era": "modern"}
            rows: dict[str, list[float]] = {"add": [], "remove": [], "direct": []}
            for k in range(rounds + 1):  # the first round warms up (imports, page cache)
                name = f"{kind}{k}"
                await asyncio.sleep(MIN_GAP)
                await wait_idle(proc)
                added = await timed_edit(client, config, {name: entry})
                tools = await client.tool_names()
                if f"{name}__echo" not in tools:
                    raise BenchError(f"{name}__echo not listed after the edit: {sorted(tools)}")
                if not set(base_pid) <= {pid for pid, _ in children_of(proc.pid)}:
                    raise BenchError("the untouched base server was restarted")
                await asyncio.sleep(MIN_GAP)
                await wait_idle(proc)
                removed = await timed_edit(client, config, name)
                await wait_idle(proc)
                direct = direct_start(kind)
                label = "warm-up" if k == 0 else f"round {k}/{rounds}"
                print(
                    f"  {kind} {label}: add {added * 1000:6.1f} ms, remove "
                    f"{removed * 1000:6.1f} ms, direct start {direct * 1000:6.1f} ms",
                    file=log,
                )
                if k:
                    rows["add"].append(added)
                    rows["remove"].append(removed)
                    rows["direct"].append(direct)
            results[kind] = rows
    return results


def load_average() -> str:
    """The machine's 1-minute load average: other work inflates the times."""
    return Path("/proc/loadavg").read_text().split()[0]


def report(results: dict[str, Any], rounds: int, load: tuple[str, str]) -> str:
    lines = [
        f"Config hot reload, {rounds} rounds per upstream (median, min-max, ms); "
        f"{os.cpu_count()} CPUs, load average {load[0]} before, {load[1]} after:",
        "",
        "| upstream | add: write → list_changed | remove: write → list_changed "
        "| direct start (floor of add) | add - direct |",
        "|---|---|---|---|---|",
    ]
    for kind, rows in results.items():
        cells = []
        for key in ("add", "remove", "direct"):
            values = [v * 1000 for v in rows[key]]
            cells.append(f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})")
        extra = statistics.median(rows["add"]) - statistics.median(rows["direct"])
        label = UPSTREAMS[kind][0]
        lines.append(f"| {label} | {' | '.join(cells)} | {extra * 1000:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per upstream")
    parser.add_argument("--json", type=Path, help="also write every raw measurement here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    workdir = Path(tempfile.mkdtemp(prefix="catalyst-bench-config-"))
    procs = Processes(workdir)
    before = load_average()
    try:
        results = asyncio.run(
            asyncio.wait_for(
                measure(procs, workdir, args.rounds, sys.stderr), 60 + args.rounds * 60
            )
        )
    except (BenchError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if args.keep_logs:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(results, args.rounds, (before, load_average())))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
