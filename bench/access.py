"""What authentication, RBAC, rate limits and audit add to a gateway ``tools/call``.

Two gateways serve the same one-tool REST pack (``get_item(id)`` over a local endpoint process
answering ~200 bytes of JSON: the benchmark pack of ``bench/packs.py``, a short and steady call;
a SQL tool on SQLite would add aiosqlite's thread hops and their jitter to both sides):

* **off**: ``auth.enabled: false``, no rate limits, ``audit.enabled: false`` — the local
  single-user gateway of before;
* **on**: ``auth.enabled: true`` with an API key (cached after its first use), a role whose
  rules allow the tool next to a deny rule for other tools (RBAC decides every call), three
  rate limits (per user, per tool, per server; buckets far from empty), and the audit trail on
  (argument digests, records written in the background to a SQLite file).

One ``httpx2.AsyncClient`` (keep-alive, one request at a time) alternates batches of
modern-era ``tools/call`` to each, swapping the order every round, after a warm-up of both.
Each batch records every latency and the CPU time each gateway used. The table gives the
median of the round medians; the target is an added median latency of at most 0.1 ms.

    .venv/bin/python bench/access.py [--rounds 7] [--requests 1000] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
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
from packs_rest import batch, start_endpoint
from procs import BenchError, Processes, free_port, gateway_argv
from report import code_version

TOOL = "pack__get_item"
TARGET_MS = 0.1
ROLES = {
    "bench": {
        "rules": [
            {"effect": "deny", "kinds": ["tool"], "match": ["pack__delete_*"]},
            {"effect": "allow", "kinds": ["tool"], "match": ["pack__*"]},
        ]
    }
}
BIG = {"rate_per_second": 1_000_000, "burst": 1_000_000}


def config(workdir: Path, name: str, packs: Path, secure: bool) -> tuple[Path, int]:
    port = free_port()
    settings: dict[str, Any] = {
        "gateway": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
        "packs": {"path": str(packs), "watch": False},
        "storage": {"url": f"sqlite+aiosqlite:///{workdir / name}.db"},
        "audit": {"enabled": secure},
    }
    if secure:
        settings["auth"] = {"enabled": True}
        settings["rbac"] = {"roles": ROLES}
        settings["rate_limits"] = {"per_user": BIG, "per_tool": BIG, "per_server": BIG}
    path = workdir / f"{name}.yaml"
    path.write_text(json.dumps(settings, indent=2))
    return path, port


async def make_key(url: str) -> str:
    """A user with the bench role and an API key for them, straight into the database."""
    from catalyst_mcp.security import apikeys
    from catalyst_mcp.storage.db import Database
    from catalyst_mcp.storage.keys import KeyRepo
    from catalyst_mcp.storage.migrate import upgrade
    from catalyst_mcp.storage.users import UserRepo

    db = Database(url)
    try:
        await upgrade(db)
        await UserRepo(db, known_roles={"bench"}).create("bench-user", roles=("bench",))
        new = apikeys.generate()
        await KeyRepo(db).create("bench-user", "bench", new.prefix, new.key_hash)
        return new.token
    finally:
        await db.close()


async def measure(
    urls: dict[str, str],
    token: str,
    pids: dict[str, int],
    args: argparse.Namespace,
    log: Any,
    procs: Processes,
) -> dict[str, list[dict[str, Any]]]:
    body = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": TOOL, "arguments": {"id": 7}, "_meta": META},
        }
    )
    headers = {
        "off": call_headers(TOOL),
        "on": {**call_headers(TOOL), "Authorization": f"Bearer {token}"},
    }
    watch = CpuWatch()
    watch.track(procs)
    async with httpx2.AsyncClient(timeout=10.0, trust_env=False) as http:

        def sender(name: str) -> Any:
            async def send() -> None:
                response = await http.post(urls[name], content=body, headers=headers[name])
                content = response.content
                if response.status_code != 200 or b'"in_stock":true' not in content:
                    raise BenchError(f"{name}: bad answer {response.status_code} {content[:300]!r}")

            return send

        targets = {name: sender(name) for name in urls}
        for send in targets.values():
            await batch(send, args.warmup, pids, watch)
        runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
        for r in range(args.rounds):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            for name in order:
                runs[name].append(await batch(targets[name], args.requests, pids, watch))
            off, on = runs["off"][-1], runs["on"][-1]
            print(
                f"  round {r + 1}/{args.rounds}: off {off['median_ms']:.3f} ms, on "
                f"{on['median_ms']:.3f} ms, added {on['median_ms'] - off['median_ms']:+.3f} ms",
                file=log,
            )
    return runs


def table(runs: dict[str, list[dict[str, Any]]], started: float, load: tuple[float, ...]) -> str:
    def med(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    def cpu(name: str) -> float:
        return statistics.median(run["cpu_us"][name] for run in runs[name])

    added = [
        on["median_ms"] - off["median_ms"] for off, on in zip(runs["off"], runs["on"], strict=True)
    ]
    overhead = statistics.median(added)
    ok = overhead <= TARGET_MS
    lines = [
        "### Catalyst access pipeline — what auth + RBAC + rate limits + audit add to tools/call",
        "",
        f"- Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"load average {load[0]:.2f} at start. Gateway code: {code_version()}.",
        f"- {len(added)} rounds of {len(runs['on'][0]['latencies_us'])} sequential requests "
        f"per gateway, order swapped every round. Run time {time.monotonic() - started:.0f}s.",
        "",
        "| Gateway | median | p99 | gateway CPU / call |",
        "|---|--:|--:|--:|",
        f"| off (no auth, no limits, no audit) | {med('off', 'median_ms'):.3f} ms "
        f"| {med('off', 'p99_ms'):.3f} ms | {cpu('off'):.0f} µs |",
        f"| on (API key, RBAC, 3 rate limits, audit) | {med('on', 'median_ms'):.3f} ms "
        f"| {med('on', 'p99_ms'):.3f} ms | {cpu('on'):.0f} µs |",
        "",
        f"Added at the median (median of rounds): **{overhead * 1000:+.0f} µs** "
        f"(rounds: {', '.join(f'{a * 1000:+.0f}' for a in added)} µs; ratio on/off "
        f"{med('on', 'median_ms') / med('off', 'median_ms'):.2f}x); added CPU "
        f"{cpu('on') - cpu('off'):+.0f} µs/call. Target ≤ {TARGET_MS * 1000:.0f} µs: "
        f"**{'PASS' if ok else 'MISSED'}**.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=1000, help="requests per batch")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    import os

    load = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="catalyst-bench-access-") as tmp:
        workdir = Path(tmp)
        packs = workdir / "packs"
        packs.mkdir()
        procs = Processes(workdir)
        try:
            _endpoint, base = start_endpoint(procs)
            (packs / "pack.yaml").write_text(yaml.safe_dump(rest_pack(base), sort_keys=False))
            urls, pids = {}, {}
            for name, secure in (("off", False), ("on", True)):
                path, port = config(workdir, name, packs, secure)
                if secure:
                    token = asyncio.run(make_key(f"sqlite+aiosqlite:///{workdir / name}.db"))
                proc = procs.start(name, gateway_argv(path), env=child_env())
                base = f"http://127.0.0.1:{port}"
                wait_ready(proc, base)
                urls[name], pids[name] = f"{base}/mcp", proc.pid
            watch_procs = procs
            runs = asyncio.run(measure(urls, token, pids, args, sys.stderr, watch_procs))
        finally:
            procs.stop_all()
    report = table(runs, started, load)
    print(report)
    overhead = statistics.median(
        on["median_ms"] - off["median_ms"] for off, on in zip(runs["off"], runs["on"], strict=True)
    )
    return 1 if args.check and overhead > TARGET_MS else 0


if __name__ == "__main__":
    sys.exit(main())
