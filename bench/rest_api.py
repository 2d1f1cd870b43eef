"""What the REST API adds to a tool call: the same ``tools/call`` over MCP and over REST, through
the same gateway, in one run (issue 14's target: REST adds at most 0.1 ms).

    .venv/bin/python bench/rest_api.py [--rounds 5] [--calls 2000] [--warmup 300]

One ``catalyst serve`` process relays to the lean stdio echo upstream (bench/upstream_lean.py),
so the upstream leg is the same for both rows and their difference is the inbound path. A
client process (a blocking raw-socket loop, the same for both rows) sends ``calls``
sequential calls of ``up__echo`` with ``{"text": "hello, gateway"}`` on one keep-alive
connection after ``warmup`` unmeasured ones:

* MCP: ``POST /mcp``, a modern-era (2026-07-28) ``tools/call`` with its headers and ``_meta``;
* REST: ``POST /api/v1/tools/up__echo/call`` with the arguments as the body; the gateway also
  checks them against the tool's input schema, which MCP calls leave to the upstream.

Each round measures both rows, in an order swapped from round to round; the table shows the
median of the rounds: latency at the median and p99 of each round's calls, and the gateway's
CPU per call (user + system from /proc over the round's calls, warm-up included, divided by
them), then REST minus MCP.

A second table takes the sockets, the HTTP server and the upstream away: the gateway's ASGI
app in this process, with an in-process echo provider of the same tool, driven directly for
``calls`` requests per row and round (alternating), CPU per request from ``process_time``.
That is the Python work each path does, without the scheduling noise of three processes on a
shared machine. Prints Markdown; exits 1 with ``--check`` when REST adds more than 0.1 ms at
the median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from clients import BlockingHttp, summarize
from mcpwire import ECHO_TEXT, http_request, is_good_result
from procs import (
    BENCH,
    GATEWAY_SERVER,
    BenchError,
    Processes,
    cpu_seconds,
    free_port,
    gateway_argv,
    ready,
    wait_until,
)

TOOL = f"{GATEWAY_SERVER}__echo"
ROWS = ["mcp", "rest"]
LABELS = {"mcp": "MCP (Streamable HTTP, modern)", "rest": "REST (/api/v1/tools/.../call)"}
TARGET_MS = 0.1


def rest_request(port: int) -> bytes:
    body = json.dumps({"text": ECHO_TEXT}).encode()
    head = (
        f"POST /api/v1/tools/{TOOL}/call HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def good(kind: str, status: int, body: bytes) -> bool:
    if status != 200:
        return False
    if kind == "mcp":
        return is_good_result(body)
    return body.startswith(b'{"isError":false') and ECHO_TEXT.encode() in body


# ---- the client (its own process) ------------------------------------------------------------


def client(kind: str, port: int, n: int, warmup: int) -> dict[str, Any]:
    http = BlockingHttp.__new__(BlockingHttp)
    http.sock = socket.create_connection(("127.0.0.1", port))
    http.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    http.buf = b""
    if kind == "mcp":
        request = http_request(f"http://127.0.0.1:{port}/mcp", TOOL)
    else:
        request = rest_request(port)
    for _ in range(warmup):
        status, body = http.exchange(request)
        if not good(kind, status, body):
            raise SystemExit(f"bad answer during warm-up: {status} {body[:300]!r}")
    clock = time.perf_counter_ns
    samples, bad = [], 0
    for _ in range(n):
        start = clock()
        status, body = http.exchange(request)
        samples.append(clock() - start)
        bad += not good(kind, status, body)
    http.sock.close()
    return {**summarize(samples), "bad": bad}


# ---- in process: the ASGI app alone ----------------------------------------------------------


async def _in_process(rounds: int, calls: int) -> dict[str, list[float]]:
    from echo_provider import EchoProvider
    from mcpwire import call_body, call_headers

    from catalyst_mcp.app import Gateway
    from catalyst_mcp.settings import Settings

    settings = Settings.model_validate({"packs": {"path": None}, "audit": {"enabled": False}})
    gateway = Gateway(settings, [EchoProvider(GATEWAY_SERVER)])
    await gateway.start()
    rest_body = json.dumps({"text": ECHO_TEXT}).encode()
    requests = {
        "mcp": ("/mcp", {**call_headers(TOOL), "Host": "127.0.0.1"}, call_body(TOOL)),
        "rest": (
            f"/api/v1/tools/{TOOL}/call",
            {"Content-Type": "application/json", "Host": "127.0.0.1"},
            rest_body,
        ),
    }
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def drive(kind: str) -> float:
        path, headers, body = requests[kind]
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "scheme": "http",
            "http_version": "1.1",
            "headers": [
                (k.lower().encode(), v.encode())
                for k, v in {**headers, "Content-Length": str(len(body))}.items()
            ],
        }
        message = {"type": "http.request", "body": body, "more_body": False}

        async def receive() -> Any:
            return message

        start = time.process_time()
        for _ in range(calls):
            sent.clear()
            await gateway.asgi(scope, receive, send)
        spent = time.process_time() - start
        if not good(kind, sent[0]["status"], sent[-1]["body"]):
            raise BenchError(f"bad answer in process over {kind}: {sent[-1]['body'][:300]!r}")
        return spent / calls * 1e6

    results: dict[str, list[float]] = {row: [] for row in ROWS}
    try:
        await drive("mcp")  # warm-up
        await drive("rest")
        for index in range(rounds * 2):
            for kind in ROWS if index % 2 == 0 else ROWS[::-1]:
                results[kind].append(await drive(kind))
    finally:
        await gateway.stop()
    return results


def in_process(rounds: int, calls: int) -> dict[str, list[float]]:
    return asyncio.run(_in_process(rounds, calls))


# ---- the orchestration -----------------------------------------------------------------------


def _config(path: Path, port: int) -> None:
    upstream = {"command": sys.executable, "args": [str(BENCH / "upstream_lean.py"), "stdio"]}
    config = {
        "gateway": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
        "servers": {GATEWAY_SERVER: upstream},
        "packs": {"path": None},
        # the inbound paths alone: auth, RBAC, rate limits and audit are the same code for both
        # (McpServer), and what they cost is bench/access.py's
        "audit": {"enabled": False},
    }
    path.write_text(json.dumps(config))  # JSON is YAML


def measure(kind: str, port: int, gateway_pid: int, n: int, warmup: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "client", kind, str(port), str(n), str(warmup)]
    before = cpu_seconds(gateway_pid)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    spent = cpu_seconds(gateway_pid) - before
    if done.returncode != 0:
        raise BenchError(f"client {kind} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["bad"]:
        raise BenchError(f"{result['bad']} bad answers over {kind}")
    result["cpu_us"] = spent / (n + warmup) * 1e6
    return result


def run(rounds: int, calls: int, warmup: int) -> dict[str, list[dict[str, Any]]]:
    workdir = Path(tempfile.mkdtemp(prefix="catalyst-bench-rest-"))
    procs = Processes(workdir)
    results: dict[str, list[dict[str, Any]]] = {row: [] for row in ROWS}
    try:
        port = free_port()
        _config(workdir / "gateway.yaml", port)
        gateway = procs.start("gateway", gateway_argv(workdir / "gateway.yaml"))
        wait_until(lambda: ready(port), gateway, "the gateway")
        for index in range(rounds):
            order = ROWS if index % 2 == 0 else ROWS[::-1]
            for kind in order:
                results[kind].append(measure(kind, port, gateway.pid, calls, warmup))
            print(f"round {index + 1}/{rounds} done", file=sys.stderr)
    finally:
        procs.stop_all()
    return results


def report(
    results: dict[str, list[dict[str, Any]]], calls: int, alone: dict[str, list[float]]
) -> tuple[str, bool]:
    rounds = len(results["mcp"])
    value = {
        (kind, key): median(r[key] for r in results[kind])
        for kind in ROWS
        for key in ("median_ms", "p99_ms", "cpu_us")
    }
    lines = [
        f"`tools/call` of the lean stdio echo through one `catalyst serve`, {calls} sequential "
        f"calls on one connection per round and row; median of {rounds} rounds.",
        "",
        "| path | p50 ms | p99 ms | gateway CPU µs/call |",
        "|---|--:|--:|--:|",
    ]
    for kind in ROWS:
        lines.append(
            f"| {LABELS[kind]} | {value[kind, 'median_ms']:.3f} | {value[kind, 'p99_ms']:.3f} "
            f"| {value[kind, 'cpu_us']:.1f} |"
        )
    added = value["rest", "median_ms"] - value["mcp", "median_ms"]
    added_cpu = value["rest", "cpu_us"] - value["mcp", "cpu_us"]
    passed = added <= TARGET_MS
    added_p99 = value["rest", "p99_ms"] - value["mcp", "p99_ms"]
    lines.append(f"| **REST - MCP** | **{added:+.3f}** | {added_p99:+.3f} | **{added_cpu:+.1f}** |")
    paired = [
        r["median_ms"] - m["median_ms"]
        for r, m in zip(results["rest"], results["mcp"], strict=True)
    ]
    lines += [
        "",
        f"REST - MCP at the median, per round: {', '.join(f'{d:+.3f}' for d in paired)} ms.",
        f"Target: REST adds ≤ {TARGET_MS} ms at the median: {'PASS' if passed else 'FAIL'}.",
        "",
        f"In process (the ASGI app alone, an in-process echo provider; median of "
        f"{len(alone['mcp'])} alternating runs of {calls} requests):",
        "",
        "| path | gateway CPU µs/request |",
        "|---|--:|",
    ]
    for kind in ROWS:
        lines.append(f"| {LABELS[kind]} | {median(alone[kind]):.1f} |")
    lines.append(f"| **REST - MCP** | **{median(alone['rest']) - median(alone['mcp']):+.1f}** |")
    return "\n".join(lines), passed


def main(argv: list[str]) -> None:
    if argv[:1] == ["client"]:
        kind, port, n, warmup = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
        print(json.dumps(client(kind, port, n, warmup)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    try:
        results = run(args.rounds, args.calls, args.warmup)
        print("in process ...", file=sys.stderr)
        alone = in_process(args.rounds, args.calls)
    except BenchError as exc:
        raise SystemExit(f"benchmark failed: {exc}") from exc
    text, passed = report(results, args.calls, alone)
    print(text)
    if args.check and not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
