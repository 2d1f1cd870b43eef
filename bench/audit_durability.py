"""What each audit durability costs a gateway ``tools/call``: audit off, buffered and strict.

Gateways serve the same one-tool REST pack (``get_item(id)`` over a local endpoint process, as in
``bench/access.py``), with authentication off so only the audit trail differs:

* **off**: ``audit.enabled: false``, the baseline;
* **sqlite-buffered** / **sqlite-strict**: the audit trail in a SQLite file of its own,
  ``audit.durability: buffered`` (records committed in the background) or ``strict`` (each
  answer waits for its record's durable commit, concurrent calls sharing commits);
* **pg-buffered** / **pg-strict**: the same on PostgreSQL (a database of their own each, created
  and dropped by this script), when PostgreSQL answers at ``--pg`` (default 127.0.0.1:5432).

At each concurrency (1 and 32 by default) every round sends one batch to each gateway, order
rotated every round, after a warm-up of all: ``c`` keep-alive clients each make ``n / c``
sequential modern-era ``tools/call``. Per batch: the median and p99 latency, calls per second
and the gateway process's CPU per call (the writer thread included; PostgreSQL's own CPU is not).
The table gives the median over rounds, and each gateway's ratio to **off** in the same run.

A second, in-process table shows group commit itself: ``AuditLog.commit()`` from ``c``
concurrent callers in a loop, records per transaction and the median wait.

    .venv/bin/python bench/audit_durability.py [--rounds 5] [--requests 640] [--concurrency 1 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx2
import orjson
import yaml
from mcpwire import META, call_headers
from measure import CpuWatch
from packs_gateway import child_env, wait_ready
from packs_gen import rest_pack
from packs_rest import quantile, start_endpoint
from procs import BenchError, Processes, cpu_seconds, free_port, gateway_argv
from report import code_version

from catalyst_mcp.observability.audit import AuditEvent, AuditLog
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade

TOOL = "pack__get_item"
OTHER_LOAD: list[float] = []  # cores other processes used, per round
BODY = orjson.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": TOOL, "arguments": {"id": 7}, "_meta": META},
    }
)


def pg_reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


@contextlib.contextmanager
def pg_databases(base: str, names: list[str]) -> Iterator[dict[str, str]]:
    """A new PostgreSQL database per name (``catalyst_bench_<hex>_<name>``), dropped after."""
    import asyncpg

    suffix = uuid.uuid4().hex[:8]
    made = {name: f"catalyst_bench_{suffix}_{name.replace('-', '_')}" for name in names}

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(f"postgresql://{base}/postgres")
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    for database in made.values():
        asyncio.run(run(f"CREATE DATABASE {database}"))
    try:
        yield {name: f"postgresql+asyncpg://{base}/{db}" for name, db in made.items()}
    finally:
        for database in made.values():
            with contextlib.suppress(Exception):
                asyncio.run(run(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


def config(
    workdir: Path, name: str, packs: Path, *, audit: bool, durability: str, url: str | None
) -> tuple[Path, int]:
    """A gateway's settings file (the audit trail in ``url``, else a SQLite file of its own)."""
    port = free_port()
    settings: dict[str, Any] = {
        "gateway": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
        "packs": {"path": str(packs), "watch": False},
        "storage": {"url": url or f"sqlite+aiosqlite:///{workdir / name}.db"},
        "audit": {"enabled": audit, "durability": durability},
    }
    path = workdir / f"{name}.yaml"
    path.write_text(json.dumps(settings, indent=2))
    return path, port


async def batch(url: str, requests: int, clients: int, pid: int) -> dict[str, float]:
    """``requests`` calls from ``clients`` keep-alive clients, ``requests / clients`` each."""
    latencies: list[float] = []
    headers = call_headers(TOOL)
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(timeout=30.0, trust_env=False, limits=limits) as http:

        async def client(count: int) -> None:
            for _ in range(count):
                started = time.perf_counter()
                response = await http.post(url, content=BODY, headers=headers)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or b'"in_stock":true' not in response.content:
                    raise BenchError(
                        f"bad answer {response.status_code} {response.content[:300]!r}"
                    )

        each = max(1, requests // clients)
        await client(1)  # the connection is open before the clock starts
        latencies.clear()
        cpu = cpu_seconds(pid)
        started = time.perf_counter()
        await asyncio.gather(*(client(each) for _ in range(clients)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu
    return {
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": quantile(latencies, 0.99) * 1000,
        "calls_per_s": len(latencies) / elapsed,
        "cpu_us": cpu / len(latencies) * 1e6,
    }


async def pg_commits(base: str, databases: dict[str, str]) -> dict[str, int]:
    """Transactions committed so far in each PostgreSQL database (``pg_stat_database``; a
    backend reports its counts within about a second)."""
    import asyncpg

    if not databases:
        return {}
    await asyncio.sleep(1.5)
    conn = await asyncpg.connect(f"postgresql://{base}/postgres")
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return {
            name: int(
                await conn.fetchval(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
                    url.rsplit("/", 1)[1],
                )
            )
            for name, url in databases.items()
        }
    finally:
        await conn.close()


async def measure(
    urls: dict[str, str],
    pids: dict[str, int],
    args: argparse.Namespace,
    watch: CpuWatch,
    pg_urls: dict[str, str],
) -> tuple[dict[int, dict[str, list[dict[str, float]]]], dict[int, dict[str, float]]]:
    """Per concurrency, each gateway's batches; and calls per committed transaction of the
    PostgreSQL gateways (their database's transactions over the calls made)."""
    names = list(urls)
    for name in names:  # warm-up: code paths, connections, the databases' first writes
        await batch(urls[name], args.warmup, 4, pids[name])
    results: dict[int, dict[str, list[dict[str, float]]]] = {}
    per_commit: dict[int, dict[str, float]] = {}
    for clients in args.concurrency:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        requests = max(args.requests, clients * 20)
        before = await pg_commits(args.pg, pg_urls)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            snapshot = watch.snapshot()
            for name in order:
                runs[name].append(await batch(urls[name], requests, clients, pids[name]))
            foreign = watch.foreign(snapshot, watch.snapshot())
            OTHER_LOAD.append(foreign)
            line = ", ".join(f"{n} {runs[n][-1]['median_ms']:.3f}" for n in names)
            print(
                f"  c={clients} round {r + 1}/{args.rounds}: median ms {line} "
                f"(other load {foreign:.2f} cores)",
                file=sys.stderr,
            )
        results[clients] = runs
        after = await pg_commits(args.pg, pg_urls)
        calls = (requests // clients) * clients * args.rounds
        per_commit[clients] = {name: calls / max(1, after[name] - before[name]) for name in pg_urls}
    return results, per_commit


# ---- group commit, in process ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def bench_db(url: str | None, folder: Path) -> AsyncIterator[Database]:
    db = Database(url or f"sqlite:///{folder / 'group.db'}")
    try:
        await upgrade(db)
        yield db
    finally:
        await db.close()


async def group_commit(url: str | None, folder: Path, clients: int, seconds: float) -> str:
    """``clients`` callers each commit() records in a loop for ``seconds``."""
    event = AuditEvent("alice", "user", "tools/call", "pack__get_item", "ok", 1.0, {"id": 7})
    waits: list[float] = []
    async with bench_db(url, folder) as db, AuditLog(db) as log:
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await log.commit(event, timeout=30)
                waits.append(time.perf_counter() - started)

        await asyncio.gather(*(caller() for _ in range(clients)))
        records, commits = log.committed, log.commits
    return (
        f"| {clients} | {records / seconds:,.0f} | {commits / seconds:,.0f} "
        f"| {records / max(commits, 1):.1f} | {statistics.median(waits) * 1000:.2f} ms |"
    )


# ---- the report --------------------------------------------------------------------------------


def table(
    results: dict[int, dict[str, list[dict[str, float]]]],
    per_commit: dict[int, dict[str, float]],
    groups: dict[str, list[str]],
    started: float,
    load: tuple[float, ...],
    args: argparse.Namespace,
) -> str:
    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    lines = [
        "### Catalyst audit durability — what off / buffered / strict cost a tools/call",
        "",
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load[0]:.2f} at start. Gateway code: "
        f"{code_version()}. Run time {time.monotonic() - started:.0f}s.",
        f"- {args.rounds} rounds per concurrency, order rotated every round; medians of the "
        "round medians. Ratios: against **off** in the same rounds. Other processes used "
        f"{min(OTHER_LOAD):.2f} to {max(OTHER_LOAD):.2f} cores during the rounds.",
        "",
        "- calls/commit: calls per transaction committed in the gateway's database "
        "(PostgreSQL only: `pg_stat_database`).",
        "",
        "| clients | gateway | median | ratio | p99 | calls/s | ratio | CPU/call | ratio "
        "| calls/commit |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for clients, runs in results.items():
        base = runs["off"]
        for name, gateway_runs in runs.items():
            m, b = med(gateway_runs, "median_ms"), med(base, "median_ms")
            t, bt = med(gateway_runs, "calls_per_s"), med(base, "calls_per_s")
            c, bc = med(gateway_runs, "cpu_us"), med(base, "cpu_us")
            shared = per_commit.get(clients, {}).get(name)
            lines.append(
                f"| {clients} | {name} | {m:.3f} ms | {m / b:.2f}x | "
                f"{med(gateway_runs, 'p99_ms'):.3f} ms | {t:,.0f} | {t / bt:.2f}x | "
                f"{c:.0f} µs | {c / bc:.2f}x | {'-' if shared is None else f'{shared:.1f}'} |"
            )
    for backend, rows in groups.items():
        lines += [
            "",
            f"Group commit in process ({backend}, `AuditLog.commit()` in a loop, "
            f"{args.group_seconds:g} s each):",
            "",
            "| callers | records/s | commits/s | records per commit | median wait |",
            "|--:|--:|--:|--:|--:|",
            *rows,
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=640, help="calls per batch")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--group-seconds", type=float, default=2.0)
    parser.add_argument("--pg", default="postgres@127.0.0.1:5432", help="user@host:port")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    started = time.monotonic()
    host, _, port = args.pg.rpartition("@")[2].partition(":")
    use_pg = not args.no_pg and pg_reachable(host, int(port or 5432))
    if not use_pg:
        print("PostgreSQL not reachable (or --no-pg): SQLite only", file=sys.stderr)
    gateways: dict[str, tuple[str, str]] = {  # name -> (backend, durability)
        "off": ("none", "buffered"),
        "sqlite-buffered": ("sqlite", "buffered"),
        "sqlite-strict": ("sqlite", "strict"),
    }
    if use_pg:
        gateways |= {"pg-buffered": ("pg", "buffered"), "pg-strict": ("pg", "strict")}
    pg_names = [name for name, (backend, _) in gateways.items() if backend == "pg"]
    with (
        tempfile.TemporaryDirectory(prefix="catalyst-bench-audit-") as tmp,
        pg_databases(args.pg, pg_names) if use_pg else contextlib.nullcontext({}) as pg_urls,
    ):
        workdir = Path(tmp)
        packs = workdir / "packs"
        packs.mkdir()
        procs = Processes(workdir)
        try:
            _endpoint, base = start_endpoint(procs)
            (packs / "pack.yaml").write_text(yaml.safe_dump(rest_pack(base), sort_keys=False))
            urls, pids = {}, {}
            for name, (backend, durability) in gateways.items():
                path, port = config(
                    workdir,
                    name,
                    packs,
                    audit=backend != "none",
                    durability=durability,
                    url=pg_urls.get(name),
                )
                proc = procs.start(name, gateway_argv(path), env=child_env())
                gateway_url = f"http://127.0.0.1:{port}"
                wait_ready(proc, gateway_url)
                urls[name], pids[name] = f"{gateway_url}/mcp", proc.pid
            watch = CpuWatch()
            watch.track(procs)
            pg_gateways = {name: pg_urls[name] for name in pg_names}
            results, per_commit = asyncio.run(measure(urls, pids, args, watch, pg_gateways))
        finally:
            procs.stop_all()
        groups: dict[str, list[str]] = {"SQLite": []}
        if use_pg:
            groups["PostgreSQL"] = []
        for backend in groups:
            for clients in args.concurrency:
                url = pg_urls["pg-strict"] if backend == "PostgreSQL" else None
                groups[backend].append(
                    asyncio.run(group_commit(url, workdir, clients, args.group_seconds))
                )
    print(table(results, per_commit, groups, started, load, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
