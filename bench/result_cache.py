"""What a result cache hit costs next to the uncached call to an HTTP upstream, through a real
``catalyst serve`` (issue 15's target: a hit answers in at most 0.3x the uncached time).

    .venv/bin/python bench/result_cache.py [--rounds 5] [--calls 1000] [--warmup 200] [--work-ms 1]

Two HTTP upstreams, each the lean echo of ``bench/upstream_lean.py`` run by this script (its
``answer``), one answering at once and one after ``--work-ms`` of simulated work per
``tools/call`` (an ``asyncio.sleep``: a small database query or API call it waits for, which
costs the upstream no CPU). The lean upstream is nearly free (about 0.1 ms a call), so against
it the ratio shows mostly the gateway's own inbound cost; against the one with work it shows
what the cache saves for a server doing something. **The target refers to the upstream with
work**; both are reported.

Gateway A (default settings: audit on, buffered, in a SQLite file; auth off) serves each
upstream twice, as ``plain`` (not cached) and ``cached`` (``cache: {ttl: 1h, scope: user}``).
Gateway B (only if Redis answers at 127.0.0.1:6379) serves the cached pair with
``cache.max_entries: 0`` and ``cache.redis_url``: every lookup is a Redis hit (L2). Rows:

* uncached: ``plain__echo`` through A (every call reaches the upstream);
* L1 hit: ``cached__echo`` through A (the first call stored it; the rest are memory hits);
* L2 hit: ``cached__echo`` through B (every call a Redis GET);
* herd: bursts of ``--herd`` (32) identical calls at once, one per connection, new arguments
  every burst (each burst a miss of one key), ``--herd-bursts`` per round, to the upstream
  with work: ``coalesced`` through A, ``not coalesced`` through a gateway C with
  ``cache.coalesce: false``; upstream calls per burst (the upstream counts them: ``GET
  /count``), each burst's wall time until its last answer, gateway CPU per burst.

A client process (a blocking raw-socket loop on one keep-alive connection, ``bench/clients.py``)
sends ``--warmup`` then ``--calls`` sequential modern-era ``tools/call`` with the same
arguments; each round measures every row, in an order reversed from round to round. The table
gives the median over rounds of each round's median and p99 latency, the gateway's CPU per
call (user + system from /proc, warm-up included), and the ratio hit / uncached. Prints
Markdown; ``--check`` exits 1 if the L1 hit misses the target against the upstream with work.
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
import uuid
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clients import BlockingHttp, summarize
from mcpwire import http_request, is_good_result
from procs import BenchError, Processes, cpu_seconds, free_port, gateway_argv, ready, wait_until

TARGET = 0.3
REDIS = ("127.0.0.1", 6379)
REDIS_URL = "redis://127.0.0.1:6379/0"


# ---- the upstream (its own process) ----------------------------------------------------------


def upstream(port: int, work_ms: float) -> None:
    """The lean echo over HTTP, ``work_ms`` slower per tools/call."""
    import orjson
    import uvicorn
    from upstream_lean import answer

    delay = work_ms / 1000
    called = [0]  # tools/call answered; GET /count says how many

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        if scope["path"] == "/count":
            data = b"%d" % called[0]
            length = [(b"content-length", b"%d" % len(data))]
            await send({"type": "http.response.start", "status": 200, "headers": length})
            await send({"type": "http.response.body", "body": data})
            return
        message = orjson.loads(body)
        if message.get("method") == "tools/call":
            called[0] += 1
            if delay:
                await asyncio.sleep(delay)
        response = answer(message)
        if response is None:
            await send({"type": "http.response.start", "status": 202, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        data = orjson.dumps(response)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
    )


# ---- the client (its own process) ------------------------------------------------------------


def client(port: int, tool: str, n: int, warmup: int) -> dict[str, Any]:
    http = BlockingHttp("127.0.0.1", port)
    request = http_request(f"http://127.0.0.1:{port}/mcp", tool)
    for _ in range(warmup):
        status, body = http.exchange(request)
        if status != 200 or not is_good_result(body):
            raise SystemExit(f"bad answer during warm-up: {status} {body[:300]!r}")
    clock = time.perf_counter_ns
    samples, bad = [], 0
    for _ in range(n):
        start = clock()
        status, body = http.exchange(request)
        samples.append(clock() - start)
        bad += status != 200 or not is_good_result(body)
    http.sock.close()
    return {**summarize(samples), "bad": bad}


def herd(port: int, tool: str, width: int, bursts: int, tag: str) -> dict[str, Any]:
    """``bursts`` times, ``width`` identical calls at once (one per connection), with arguments
    no burst had before (each burst a miss): the wall time of each burst, until its last
    answer."""
    return asyncio.run(_herd(port, tool, width, bursts, tag))


async def _herd(port: int, tool: str, width: int, bursts: int, tag: str) -> dict[str, Any]:
    import orjson
    from mcpwire import ECHO_TEXT, META, call_headers

    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(width)]
    for _, writer in conns:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = ["POST /mcp HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{k}: {v}" for k, v in call_headers(tool).items()]

    def request(burst: int) -> bytes:
        arguments = {"text": f"{ECHO_TEXT} {tag} {burst}"}
        params = {"name": tool, "arguments": arguments, "_meta": META}
        body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
        lines = [*head, f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def exchange(reader: asyncio.StreamReader, writer: Any, data: bytes) -> bool:
        writer.write(data)
        answer = await reader.readuntil(b"\r\n\r\n")
        at = answer.lower().find(b"content-length:")
        size = int(answer[at + 15 :].split(b"\r\n", 1)[0])
        body = await reader.readexactly(size)
        return answer.startswith(b"HTTP/1.1 200") and is_good_result(body)

    clock = time.perf_counter_ns
    samples, bad = [], 0
    for burst in range(bursts):
        data = request(burst)
        start = clock()
        good = await asyncio.gather(*(exchange(r, w, data) for r, w in conns))
        samples.append(clock() - start)
        bad += good.count(False)
    for _, writer in conns:
        writer.close()
    return {**summarize(samples), "bad": bad}


def upstream_calls(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /count HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return int(answer.split(b"\r\n\r\n", 1)[1])


# ---- in process: the gateway's ASGI app alone -------------------------------------------------


async def _in_process(rounds: int, calls: int) -> dict[str, list[float]]:
    """CPU µs per request of the gateway app driven in this process, over an in-process echo:
    not cached, a hit, and a miss that stores (new arguments every call)."""
    import orjson
    from echo_provider import EchoProvider
    from mcpwire import META, call_headers

    from catalyst_mcp.app import Gateway
    from catalyst_mcp.orchestration.cache.config import CacheSpec
    from catalyst_mcp.settings import Settings

    settings = Settings.model_validate(
        {"packs": {"path": None}, "rules": {"path": None}, "audit": {"enabled": False}}
    )
    gateway = Gateway(settings, [EchoProvider(name) for name in ("plain", "cached", "fresh")])
    await gateway.start()
    for name in ("cached", "fresh"):
        gateway.cache.configure(name, CacheSpec(ttl=3600))

    def body(tool: str, n: int) -> bytes:
        params = {"name": tool, "arguments": {"text": f"hello, gateway {n}"}, "_meta": META}
        return orjson.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": params})

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def drive(row: str, first: int) -> float:
        tool = {"uncached": "plain", "hit": "cached", "miss + store": "fresh"}[row] + "__echo"
        bodies = [body(tool, first + i if row == "miss + store" else 0) for i in range(calls)]
        headers = [(k.lower().encode(), v.encode()) for k, v in call_headers(tool).items()]
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/mcp",
            "raw_path": b"/mcp",
            "query_string": b"",
            "scheme": "http",
            "http_version": "1.1",
            "headers": [*headers, (b"host", b"127.0.0.1")],
        }
        start = time.process_time()
        for data in bodies:
            message = {"type": "http.request", "body": data, "more_body": False}

            async def receive(message: Any = message) -> Any:
                return message

            sent.clear()
            await gateway.asgi(
                {**scope, "headers": [*scope["headers"], (b"content-length", b"%d" % len(data))]},
                receive,
                send,
            )
        spent = time.process_time() - start
        if not is_good_result(sent[-1]["body"]) and b"hello, gateway" not in sent[-1]["body"]:
            raise BenchError(f"bad answer in process: {sent[-1]['body'][:300]!r}")
        return spent / calls * 1e6

    rows = ["uncached", "hit", "miss + store"]
    results: dict[str, list[float]] = {row: [] for row in rows}
    try:
        for row in rows:  # warm-up (and the hit's first call stores it)
            await drive(row, 10_000_000)
        for index in range(rounds * 2):
            for row in rows if index % 2 == 0 else rows[::-1]:
                results[row].append(await drive(row, (index + 1) * calls))
    finally:
        await gateway.stop()
    return results


# ---- the orchestration -----------------------------------------------------------------------


def redis_up() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(REDIS) == 0


def _entry(port: int, cached: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"url": f"http://127.0.0.1:{port}/mcp", "era": "modern"}
    if cached:
        entry["cache"] = {"ttl": "1h", "scope": "user"}
    return entry


def _gateway(
    procs: Processes, workdir: Path, name: str, servers: dict[str, Any], **sections: Any
) -> tuple[int, int]:
    port = free_port()
    config = {
        "gateway": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
        "servers": servers,
        "packs": {"path": None},
        "rules": {"path": None},
        "storage": {"url": f"sqlite+aiosqlite:///{workdir / name}.db"},
        **sections,
    }
    path = workdir / f"{name}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    env = {**os.environ, "XDG_STATE_HOME": str(workdir / "state")}
    proc = procs.start(name, gateway_argv(path), env=env)
    wait_until(lambda: ready(port), proc, f"gateway {name}")
    return port, proc.pid


def measure(port: int, pid: int, tool: str, n: int, warmup: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "client", str(port), tool, str(n), str(warmup)]
    before = cpu_seconds(pid)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    spent = cpu_seconds(pid) - before
    if done.returncode != 0:
        raise BenchError(f"client for {tool} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["bad"]:
        raise BenchError(f"{result['bad']} bad answers from {tool}")
    result["cpu_us"] = spent / (n + warmup) * 1e6
    return result


def measure_herd(
    port: int, pid: int, tool: str, upstream: int, width: int, bursts: int
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    argv = [sys.executable, __file__, "herd", str(port), tool, str(width), str(bursts), tag]
    before, called = cpu_seconds(pid), upstream_calls(upstream)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    spent, called = cpu_seconds(pid) - before, upstream_calls(upstream) - called
    if done.returncode != 0:
        raise BenchError(f"herd client for {tool} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["bad"]:
        raise BenchError(f"{result['bad']} bad answers from {tool} in bursts")
    result["upstream_per_burst"] = called / bursts
    result["cpu_ms_per_burst"] = spent / bursts * 1e3
    return result


def run(
    rounds: int, calls: int, warmup: int, work_ms: float, width: int, bursts: int
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="catalyst-bench-cache-"))
    procs = Processes(workdir)
    prefix = f"catalyst-bench-cache:{uuid.uuid4().hex}:"
    with_redis = redis_up()
    upstreams = {"lean": 0.0, "work": work_ms}
    rows: dict[str, tuple[int, int, str]] = {}  # row -> (port, gateway pid, tool)
    herds: dict[str, tuple[int, int, str]] = {}  # the same, for bursts of identical misses
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        ports = {}
        for label, work in upstreams.items():
            port = free_port()
            argv = [sys.executable, __file__, "upstream", str(port), str(work)]
            proc = procs.start(f"upstream-{label}", argv)
            wait_until(lambda p=port: _open(p), proc, f"upstream {label}")
            ports[label] = port
        servers = {}
        for label, port in ports.items():
            servers[f"plain{label}"] = _entry(port, cached=False)
            servers[f"cached{label}"] = _entry(port, cached=True)
        a_port, a_pid = _gateway(procs, workdir, "gateway-a", servers)
        for label in upstreams:
            rows[f"{label}: direct"] = (ports[label], a_pid, "echo")
            rows[f"{label}: uncached"] = (a_port, a_pid, f"plain{label}__echo")
            rows[f"{label}: L1 hit"] = (a_port, a_pid, f"cached{label}__echo")
        off = {"cachedwork": servers["cachedwork"]}
        c_port, c_pid = _gateway(procs, workdir, "gateway-c", off, cache={"coalesce": False})
        herds["herd: coalesced"] = (a_port, a_pid, "cachedwork__echo")
        herds["herd: not coalesced"] = (c_port, c_pid, "cachedwork__echo")
        if with_redis:
            cached = {k: v for k, v in servers.items() if k.startswith("cached")}
            cache = {"max_entries": 0, "redis_url": REDIS_URL, "redis_prefix": prefix}
            b_port, b_pid = _gateway(procs, workdir, "gateway-b", cached, cache=cache)
            for label in upstreams:
                rows[f"{label}: L2 hit"] = (b_port, b_pid, f"cached{label}__echo")
        results = {row: [] for row in [*rows, *herds]}
        order = list(rows)
        herd_order = list(herds)
        for index in range(rounds):
            for row in order:
                port, pid, tool = rows[row]
                results[row].append(measure(port, pid, tool, calls, warmup))
            for row in herd_order:
                port, pid, tool = herds[row]
                found = measure_herd(port, pid, tool, ports["work"], width, bursts)
                results[row].append(found)
            order.reverse()
            herd_order.reverse()
            print(f"round {index + 1}/{rounds} done", file=sys.stderr)
    finally:
        procs.stop_all()
        if with_redis:
            _clean(prefix)
    return {
        "results": results,
        "redis": with_redis,
        "work_ms": work_ms,
        "calls": calls,
        "herd": {"width": width, "bursts": bursts},
    }


def _open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _clean(prefix: str) -> None:
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


KINDS = ("direct", "uncached", "L1 hit", "L2 hit")


def report(numbers: dict[str, Any]) -> tuple[str, bool]:
    found = numbers["results"]
    results = {
        f"{label}: {kind}": found[f"{label}: {kind}"]
        for label in ("lean", "work")
        for kind in KINDS
        if f"{label}: {kind}" in found
    }
    value = {
        (row, key): median(r[key] for r in rounds)
        for row, rounds in results.items()
        for key in ("median_ms", "p99_ms", "cpu_us")
    }
    rounds = len(next(iter(results.values())))
    work = numbers["work_ms"]
    lines = [
        f"`tools/call` of an HTTP echo upstream through `catalyst serve` (audit on), "
        f"{numbers['calls']} sequential calls on one connection per row and round; median of "
        f"{rounds} rounds. Upstreams: lean (answers at once), work ({work:g} ms of waiting per "
        "call).",
        "",
        "| row | p50 ms | p99 ms | gateway CPU µs/call | p50 / uncached |",
        "|---|--:|--:|--:|--:|",
    ]
    passed = True
    for row in results:
        label = row.split(":")[0]
        base = value[(f"{label}: uncached", "median_ms")]
        ratio = value[(row, "median_ms")] / base
        shown = "1" if row.endswith("uncached") else f"**{ratio:.2f}**"
        cpu = "-" if row.endswith("direct") else f"{value[(row, 'cpu_us')]:.0f}"
        if row.endswith("direct"):
            shown = f"{ratio:.2f}"
        lines.append(
            f"| {row} | {value[(row, 'median_ms')]:.3f} | {value[(row, 'p99_ms')]:.3f} "
            f"| {cpu} | {shown} |"
        )
        if row == "work: L1 hit":
            passed = ratio <= TARGET
    if not numbers["redis"]:
        lines += ["", "No Redis at 127.0.0.1:6379: the L2 rows were not measured."]
    lines += [
        "",
        f"Target: an L1 hit answers in <= {TARGET}x the uncached call's p50 against the "
        f"upstream with {work:g} ms of work: {'PASS' if passed else 'FAIL'}.",
    ]
    herd = [row for row in ("herd: not coalesced", "herd: coalesced") if row in found]
    if herd:
        width, bursts = numbers["herd"]["width"], numbers["herd"]["bursts"]
        lines += [
            "",
            f"Concurrent misses: bursts of {width} identical calls at once (one per connection; "
            f"new arguments each burst), {bursts} bursts per round, to the upstream with "
            f"{work:g} ms of work; cache.coalesce on (gateway A) and off (a gateway C). Medians "
            "of the rounds:",
            "",
            "| row | upstream calls / burst | burst p50 ms | burst p99 ms "
            "| gateway CPU ms / burst |",
            "|---|--:|--:|--:|--:|",
        ]
        for row in herd:
            rounds_of = found[row]

            def mid(key: str, rounds_of: list[dict[str, Any]] = rounds_of) -> float:
                return median(r[key] for r in rounds_of)

            lines.append(
                f"| {row} | {mid('upstream_per_burst'):.1f} | {mid('median_ms'):.2f} "
                f"| {mid('p99_ms'):.2f} | {mid('cpu_ms_per_burst'):.2f} |"
            )
    alone = numbers.get("in_process")
    if alone:
        base = median(alone["uncached"])
        lines += [
            "",
            f"In process (the gateway's ASGI app alone over an in-process echo, audit off; "
            f"median of {len(alone['uncached'])} alternating runs of {numbers['calls']} "
            "requests):",
            "",
            "| row | gateway CPU µs/request | - uncached |",
            "|---|--:|--:|",
        ]
        for row, values in alone.items():
            spent = median(values)
            lines.append(f"| {row} | {spent:.1f} | {spent - base:+.1f} |")
    return "\n".join(lines), passed


def main(argv: list[str]) -> None:
    if argv[:1] == ["client"]:
        print(json.dumps(client(int(argv[1]), argv[2], int(argv[3]), int(argv[4]))))
        return
    if argv[:1] == ["herd"]:
        found = herd(int(argv[1]), argv[2], int(argv[3]), int(argv[4]), argv[5])
        print(json.dumps(found))
        return
    if argv[:1] == ["upstream"]:
        upstream(int(argv[1]), float(argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--work-ms", type=float, default=1.0)
    parser.add_argument("--herd", type=int, default=32, help="identical calls per burst")
    parser.add_argument("--herd-bursts", type=int, default=40, help="bursts per round")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    try:
        numbers = run(
            args.rounds, args.calls, args.warmup, args.work_ms, args.herd, args.herd_bursts
        )
        print("in process ...", file=sys.stderr)
        numbers["in_process"] = asyncio.run(_in_process(args.rounds, args.calls))
    except BenchError as exc:
        raise SystemExit(f"benchmark failed: {exc}") from exc
    text, passed = report(numbers)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    if args.check and not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
