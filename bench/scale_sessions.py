"""What keeping legacy sessions in Redis costs a call in a session (issue 16's target: at most
+0.1 ms at the median against sessions in the gateway's memory).

    .venv/bin/python bench/scale_sessions.py [--rounds 5] [--calls 2000] [--warmup 300]

Needs the Redis at 127.0.0.1:6379 (keys under a prefix of this run's own, deleted at the end).
Three ``catalyst serve`` processes, each relaying to its own lean stdio echo upstream
(bench/upstream_lean.py), audit off (what it costs is bench/access.py's):

* **memory**: no ``redis.url``: sessions in the process, as a single gateway keeps them;
* **redis A** and **redis B**: ``redis.url`` set, one deployment (one prefix).

A client process (a blocking raw-socket loop) sends ``initialize`` once, then ``calls``
sequential legacy-era ``tools/call`` of ``up__echo`` in that session on one keep-alive
connection, after ``warmup`` unmeasured ones. Each round measures memory and redis A, in an
order swapped from round to round; the first table gives the median of the rounds: latency at
the median and p99 of each round's calls, and the gateway's CPU per call (user + system from
/proc). Then, per round, ``--sessions`` sessions each made on A and called once on B: the first
call of a session an instance has not seen (it reads the session from Redis once) and that
session's second call there; and ``initialize`` itself on memory and on A (a Lua script that
writes the session and checks the caps). A last table takes the sockets, the HTTP server and
the upstream away: each gateway's ASGI app in this process (one with ``redis.url``), a session
on each, ``calls`` calls per run in alternating runs, CPU per call from ``process_time``: the
Python work a call in a session costs, without the scheduling noise. Prints Markdown; exits 1
with ``--check`` when Redis adds more than 0.1 ms at the median.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clients import BlockingHttp, summarize
from mcpwire import ECHO_TEXT, is_good_result
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
VERSION = "2025-11-25"
REDIS_URL = "redis://127.0.0.1:6379/0"
TARGET_MS = 0.1
ROWS = ["memory", "redis"]
LABELS = {"memory": "sessions in memory", "redis": "sessions in Redis (`redis.url`)"}


# ---- the wire --------------------------------------------------------------------------------


def initialize(port: int) -> tuple[str, float]:
    """A new session on ``port`` (its own connection): its id, and the milliseconds it took."""
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": VERSION,
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"},
            },
        }
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        started = time.perf_counter_ns()
        conn.request("POST", "/mcp", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        took = (time.perf_counter_ns() - started) / 1e6
    finally:
        conn.close()
    session = response.getheader("mcp-session-id")
    if response.status != 200 or not session:
        raise SystemExit(f"initialize on {port} failed: {response.status}")
    return session, took


def end(port: int, session: str) -> None:
    """DELETE the session (its own connection)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("DELETE", "/mcp", headers={"Mcp-Session-Id": session})
        conn.getresponse().read()
    finally:
        conn.close()


def call_request(port: int, session: str, request_id: int = 1) -> bytes:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": TOOL, "arguments": {"text": ECHO_TEXT}},
        }
    ).encode()
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\n"
        f"Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: {VERSION}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def connect(port: int) -> BlockingHttp:
    conn = BlockingHttp.__new__(BlockingHttp)
    conn.sock = socket.create_connection(("127.0.0.1", port))
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.buf = b""
    return conn


def timed(conn: BlockingHttp, request: bytes) -> int:
    started = time.perf_counter_ns()
    status, body = conn.exchange(request)
    took = time.perf_counter_ns() - started
    if status != 200 or not is_good_result(body):
        raise SystemExit(f"bad answer: {status} {body[:300]!r}")
    return took


# ---- the clients (each in a process of its own) ----------------------------------------------


def client_calls(port: int, n: int, warmup: int) -> dict[str, Any]:
    """One session, then ``n`` calls in it (after ``warmup``)."""
    session, _ = initialize(port)
    conn = connect(port)
    request = call_request(port, session)
    for _ in range(warmup):
        timed(conn, request)
    samples = [timed(conn, request) for _ in range(n)]
    conn.sock.close()
    return {**summarize(samples), "bad": 0}


def client_cold(port_a: int, port_b: int, port_memory: int, sessions: int) -> dict[str, Any]:
    """``sessions`` times: a session made on A, its first and second call on B; and
    ``initialize`` on A and on memory."""
    conn = connect(port_b)
    first, second, init_redis, init_memory = [], [], [], []
    made: list[tuple[int, str]] = []
    for _ in range(sessions):
        session, took = initialize(port_a)
        init_redis.append(took)
        request = call_request(port_b, session)
        first.append(timed(conn, request) / 1e6)
        second.append(timed(conn, request) / 1e6)
        other, took = initialize(port_memory)
        init_memory.append(took)
        made += [(port_a, session), (port_memory, other)]
    conn.sock.close()
    for port, session in made:  # not measured: the next round starts with none
        end(port, session)
    return {
        "first_ms": median(first),
        "second_ms": median(second),
        "init_redis_ms": median(init_redis),
        "init_memory_ms": median(init_memory),
    }


# ---- in process: the ASGI app alone ----------------------------------------------------------


async def _in_process(rounds: int, calls: int) -> dict[str, list[float]]:
    """CPU per call of the two gateways' Python work, in this process (no sockets)."""
    sys.path.insert(0, str(BENCH.parent / "src"))
    from echo_provider import EchoProvider

    from catalyst_mcp.app import Gateway
    from catalyst_mcp.settings import Settings

    prefix = f"catalyst-bench-{uuid.uuid4().hex[:12]}"
    base = {"packs": {"path": None}, "audit": {"enabled": False}}
    gateways = {
        "memory": Gateway(
            Settings.model_validate(base), [EchoProvider(GATEWAY_SERVER, structured=False)]
        ),
        "redis": Gateway(
            Settings.model_validate({**base, "redis": {"url": REDIS_URL, "prefix": prefix}}),
            [EchoProvider(GATEWAY_SERVER, structured=False)],
        ),
    }
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    def scope(headers: dict[str, str], body: bytes) -> dict[str, Any]:
        return {
            "type": "http",
            "method": "POST",
            "path": "/mcp",
            "raw_path": b"/mcp",
            "query_string": b"",
            "scheme": "http",
            "http_version": "1.1",
            "headers": [
                (k.lower().encode(), v.encode())
                for k, v in {**headers, "Content-Length": str(len(body))}.items()
            ],
        }

    async def session_of(gateway: Gateway) -> dict[str, Any]:
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {"protocolVersion": VERSION, "capabilities": {}},
            }
        ).encode()
        headers = {"Content-Type": "application/json", "Host": "127.0.0.1"}
        message = {"type": "http.request", "body": body, "more_body": False}

        async def receive() -> Any:
            return message

        sent.clear()
        await gateway.asgi(scope(headers, body), receive, send)
        found = dict(sent[0]["headers"])[b"mcp-session-id"].decode()
        request = call_request(0, found)
        head, _, body = request.partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:])
        fields.pop("Content-Length")
        return scope(fields, body) | {"body": body}

    async def drive(gateway: Gateway, call: dict[str, Any]) -> float:
        message = {"type": "http.request", "body": call["body"], "more_body": False}

        async def receive() -> Any:
            return message

        started = time.process_time()
        for _ in range(calls):
            sent.clear()
            await gateway.asgi(call, receive, send)
        spent = time.process_time() - started
        if not is_good_result(sent[-1]["body"]):
            raise BenchError(f"bad answer in process: {sent[-1]['body'][:300]!r}")
        return spent / calls * 1e6

    results: dict[str, list[float]] = {row: [] for row in ROWS}
    for gateway in gateways.values():
        await gateway.start()
    try:
        requests = {row: await session_of(gateways[row]) for row in ROWS}
        for row in ROWS:  # warm-up
            await drive(gateways[row], requests[row])
        for index in range(rounds * 2):
            for row in ROWS if index % 2 == 0 else ROWS[::-1]:
                results[row].append(await drive(gateways[row], requests[row]))
    finally:
        for gateway in gateways.values():
            await gateway.stop()
        _clean(prefix)
    return results


# ---- the orchestration -----------------------------------------------------------------------


def _config(path: Path, port: int, prefix: str | None) -> None:
    upstream = {"command": sys.executable, "args": [str(BENCH / "upstream_lean.py"), "stdio"]}
    config: dict[str, Any] = {
        "gateway": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
        "servers": {GATEWAY_SERVER: upstream},
        "packs": {"path": None},
        "audit": {"enabled": False},
    }
    if prefix is not None:
        config["redis"] = {"url": REDIS_URL, "prefix": prefix}
    path.write_text(json.dumps(config))  # JSON is YAML


def _client(*args: object) -> dict[str, Any]:
    argv = [sys.executable, __file__, "client", *(str(a) for a in args)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise BenchError(f"client {args[0]} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(port: int, pid: int, n: int, warmup: int) -> dict[str, Any]:
    before = cpu_seconds(pid)
    result = _client("calls", port, n, warmup)
    result["cpu_us"] = (cpu_seconds(pid) - before) / (n + warmup) * 1e6
    return result


def _clean(prefix: str) -> None:
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match="{" + prefix + "}:*", count=1000))
        if keys:
            client.delete(*keys)


def run(rounds: int, calls: int, warmup: int, sessions: int) -> dict[str, list[dict[str, Any]]]:
    workdir = Path(tempfile.mkdtemp(prefix="catalyst-bench-sessions-"))
    procs = Processes(workdir)
    prefix = f"catalyst-bench-{uuid.uuid4().hex[:12]}"
    results: dict[str, list[dict[str, Any]]] = {row: [] for row in [*ROWS, "cold"]}
    try:
        gateways: dict[str, tuple[int, int]] = {}
        for name, shared in (("memory", None), ("redis", prefix), ("redis-b", prefix)):
            port = free_port()
            _config(workdir / f"{name}.yaml", port, shared)
            proc = procs.start(name, gateway_argv(workdir / f"{name}.yaml"))
            wait_until(lambda p=port: ready(p), proc, f"the {name} gateway")
            gateways[name] = (port, proc.pid)
        for index in range(rounds):
            for row in ROWS if index % 2 == 0 else ROWS[::-1]:
                results[row].append(measure(*gateways[row], calls, warmup))
            results["cold"].append(
                _client(
                    "cold",
                    gateways["redis"][0],
                    gateways["redis-b"][0],
                    gateways["memory"][0],
                    sessions,
                )
            )
            print(f"round {index + 1}/{rounds} done", file=sys.stderr)
    finally:
        procs.stop_all()
        _clean(prefix)
    return results


def report(
    results: dict[str, list[dict[str, Any]]],
    calls: int,
    sessions: int,
    alone: dict[str, list[float]] | None = None,
) -> tuple[str, bool]:
    rounds = len(results["memory"])
    value = {
        (row, key): median(r[key] for r in results[row])
        for row in ROWS
        for key in ("median_ms", "p99_ms", "cpu_us")
    }
    lines = [
        f"Legacy-era `tools/call` of the lean stdio echo in one session through one `catalyst "
        f"serve`, {calls} sequential calls on one connection per round and row; median of "
        f"{rounds} rounds.",
        "",
        "| sessions | p50 ms | p99 ms | gateway CPU µs/call |",
        "|---|--:|--:|--:|",
    ]
    for row in ROWS:
        lines.append(
            f"| {LABELS[row]} | {value[row, 'median_ms']:.3f} | {value[row, 'p99_ms']:.3f} "
            f"| {value[row, 'cpu_us']:.1f} |"
        )
    added = value["redis", "median_ms"] - value["memory", "median_ms"]
    added_p99 = value["redis", "p99_ms"] - value["memory", "p99_ms"]
    added_cpu = value["redis", "cpu_us"] - value["memory", "cpu_us"]
    ratio = value["redis", "median_ms"] / value["memory", "median_ms"]
    lines.append(
        f"| **Redis - memory** | **{added:+.3f}** ({ratio:.2f}x) | {added_p99:+.3f} "
        f"| **{added_cpu:+.1f}** |"
    )
    paired = [
        r["median_ms"] - m["median_ms"]
        for r, m in zip(results["redis"], results["memory"], strict=True)
    ]
    passed = added <= TARGET_MS
    cold = {key: median(r[key] for r in results["cold"]) for key in results["cold"][0]}
    lines += [
        "",
        f"Redis - memory at the median, per round: {', '.join(f'{d:+.3f}' for d in paired)} ms.",
        f"Target: Redis adds ≤ {TARGET_MS} ms at the median: {'PASS' if passed else 'FAIL'}.",
        "",
        f"A session made on instance A, called on instance B ({sessions} sessions per round; "
        "median of the rounds' medians, ms):",
        "",
        "| step | ms |",
        "|---|--:|",
        f"| `initialize`, sessions in memory | {cold['init_memory_ms']:.3f} |",
        f"| `initialize`, sessions in Redis | {cold['init_redis_ms']:.3f} |",
        f"| first call on B (reads the session from Redis) | {cold['first_ms']:.3f} |",
        f"| second call on B | {cold['second_ms']:.3f} |",
    ]
    if alone is not None:
        lines += [
            "",
            f"In process (the ASGI app alone, an in-process echo provider; median of "
            f"{len(alone['memory'])} alternating runs of {calls} calls):",
            "",
            "| sessions | gateway CPU µs/call |",
            "|---|--:|",
        ]
        for row in ROWS:
            lines.append(f"| {LABELS[row]} | {median(alone[row]):.1f} |")
        diff = median(alone["redis"]) - median(alone["memory"])
        lines.append(f"| **Redis - memory** | **{diff:+.1f}** |")
    return "\n".join(lines), passed


def main(argv: list[str]) -> None:
    if argv[:1] == ["client"]:
        kind, rest = argv[1], [int(a) for a in argv[2:]]
        if kind == "calls":
            print(json.dumps(client_calls(*rest)))
        else:
            print(json.dumps(client_cold(*rest)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    try:
        results = run(args.rounds, args.calls, args.warmup, args.sessions)
        print("in process ...", file=sys.stderr)
        alone = asyncio.run(_in_process(args.rounds, args.calls))
    except BenchError as exc:
        raise SystemExit(f"benchmark failed: {exc}") from exc
    text, passed = report(results, args.calls, args.sessions, alone)
    print(text)
    if args.check and not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
