"""Measurement 3: what a REST pack tool adds over calling the REST endpoint directly.

A local endpoint (``packs_endpoint.py``, its own process) answers ``GET /items/{id}`` with about
200 bytes of JSON. A gateway serves a one-tool pack whose ``get_item(id)`` calls it (checked
arguments, the request built from the action, a JMESPath projection, structured content). The
same ``httpx2.AsyncClient``, one keep-alive connection per server and one request at a time,
then alternates batches of

* (a) ``GET /items/7`` straight to the endpoint, and
* (b) a modern-era ``tools/call`` of ``pack__get_item`` with ``{"id": 7}`` to the gateway (one
  self-contained POST, headers and ``_meta`` as in ``mcpwire.py``); every answer is checked to
  be a result that is not a tool error,

after a warm-up of both. The order of (a) and (b) swaps every round. Each batch records every
request's latency and the CPU time the gateway and the endpoint used during it.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import httpx2
import orjson
from mcpwire import META, call_headers
from measure import CpuWatch
from packs_gateway import McpHttp, child_env, start_gateway
from packs_gen import dump, rest_pack
from procs import BENCH, BenchError, Proc, Processes, cpu_seconds, free_port

TOOL = "pack__get_item"
ITEM = 7
EXPECTED = {"id": ITEM, "name": f"Item {ITEM}", "in_stock": True}


def start_endpoint(procs: Processes) -> tuple[Proc, str]:
    port = free_port()
    proc = procs.start(
        "rest-endpoint",
        [sys.executable, str(BENCH / "packs_endpoint.py"), str(port)],
        env=child_env(),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    with httpx2.Client(timeout=2.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise BenchError(f"the REST endpoint exited:\n{proc.tail()}")
            try:
                if http.get(f"{base}/items/1").status_code == 200:
                    return proc, base
            except httpx2.HTTPError:
                pass
            time.sleep(0.1)
    raise BenchError(f"the REST endpoint did not answer within 30s:\n{proc.tail()}")


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


async def batch(
    send: Callable[[], Awaitable[None]], n: int, pids: dict[str, int], watch: CpuWatch
) -> dict[str, Any]:
    """``n`` sequential requests: latency median/p99 (ms), CPU µs per request by process, and
    the CPU other processes used meanwhile (cores)."""
    latencies = []
    snapshot = watch.snapshot()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    for _ in range(n):
        started = time.perf_counter()
        await send()
        latencies.append(time.perf_counter() - started)
    cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / n * 1e6 for name, pid in pids.items()}
    foreign = watch.foreign(snapshot, watch.snapshot())
    return {
        "median_ms": statistics.median(latencies) * 1000,
        "p99_ms": quantile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "cpu_us": cpu,
        "foreign_cores": foreign,
        "latencies_us": [round(x * 1e6, 1) for x in latencies],
    }


async def run_rest(
    procs: Processes, workdir: Path, rounds: int, requests: int, warmup: int, log: TextIO
) -> dict[str, Any]:
    endpoint, base = start_endpoint(procs)
    folder = workdir / "rest-pack"
    folder.mkdir()
    (folder / "pack.yaml").write_text(dump(rest_pack(base)), encoding="utf-8")
    gateway, url = start_gateway(procs, "rest-gateway", workdir, folder, watch=True)
    body = orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": TOOL, "arguments": {"id": ITEM}, "_meta": META},
        }
    )
    headers = call_headers(TOOL)
    direct_url = f"{base}/items/{ITEM}"
    pids = {"gateway": gateway.pid, "endpoint": endpoint.pid}
    watch = CpuWatch()
    watch.track(procs)

    async with McpHttp(url) as client:
        http = client.http
        result = await client.modern("tools/call", {"name": TOOL, "arguments": {"id": ITEM}}, TOOL)
        structured = result.get("structuredContent") if isinstance(result, dict) else None
        if result.get("isError") or not isinstance(structured, dict):
            raise BenchError(f"{TOOL} answered with an error or no structured content: {result}")
        wrong = {k: v for k, v in EXPECTED.items() if structured.get(k) != v}
        if wrong:
            raise BenchError(f"{TOOL}: unexpected structured content {structured}")

        async def direct() -> None:
            response = await http.get(direct_url)
            if response.status_code != 200:
                raise BenchError(f"direct GET: HTTP {response.status_code}")

        async def via_gateway() -> None:
            response = await http.post(url, content=body, headers=headers)
            content = response.content
            if (
                response.status_code != 200
                or b'"isError":true' in content
                or b'"result"' not in content
            ):
                raise BenchError(f"{TOOL}: bad answer: {response.status_code} {content[:300]!r}")

        targets = {"direct": direct, "gateway": via_gateway}
        for name, send in targets.items():
            await batch(send, warmup, pids, watch)
            print(f"  warmed up {name} ({warmup} requests)", file=log)
        runs: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
        for r in range(rounds):
            order = ("direct", "gateway") if r % 2 == 0 else ("gateway", "direct")
            for name in order:
                runs[name].append(await batch(targets[name], requests, pids, watch))
            a, b = runs["direct"][-1], runs["gateway"][-1]
            print(
                f"  rest round {r + 1}/{rounds}: direct {a['median_ms']:.3f} ms, gateway "
                f"{b['median_ms']:.3f} ms, overhead {b['median_ms'] - a['median_ms']:+.3f} ms, "
                f"gateway CPU {b['cpu_us']['gateway']:.0f} µs/call",
                file=log,
            )
    return {"runs": runs, "structured": structured}


def measure_rest(
    procs: Processes, workdir: Path, rounds: int, requests: int, warmup: int, log: TextIO
) -> dict[str, Any]:
    limit = 60 + rounds * requests * 2 * 0.05  # 50 ms a request would be absurd already

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(limit):
            return await run_rest(procs, workdir, rounds, requests, warmup, log)

    try:
        return asyncio.run(bounded())
    except TimeoutError as exc:
        raise BenchError(f"the REST measurement took over {limit:.0f}s") from exc
