"""What the inbound transport costs: one ``tools/call`` over Streamable HTTP and over WebSocket,
on TCP and on a Unix socket, through the same kind of gateway and the same upstream.

    .venv/bin/python bench/transports.py [--rounds 5] [--calls 2000] [--warmup 300]

Two ``catalyst serve`` processes (one on a loopback TCP port, one with ``--uds``), each relaying
to the lean stdio echo upstream (bench/upstream_lean.py), so the upstream leg is the same in
every row and the difference between rows is the inbound transport. A client process (a
blocking raw-socket loop, a few microseconds per call, the same for every row) sends ``calls``
sequential modern-era ``tools/call`` on one connection after ``warmup`` unmeasured ones:

* HTTP: one keep-alive POST per call, with the modern headers;
* WebSocket: one text frame per call on a socket opened once (subprotocol ``mcp``).

Each round measures every row once, in an order rotated from round to round; the table shows
the median of the rounds: latency at the median and p99 of each round's calls, and the
gateway's CPU per call (user + system from /proc, divided by the calls). Prints Markdown.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from clients import BlockingHttp, summarize
from mcpwire import call_body, http_request, is_good_result
from procs import (
    BENCH,
    GATEWAY_SERVER,
    BenchError,
    Processes,
    cpu_seconds,
    free_port,
    gateway_argv,
    wait_until,
)

TOOL = f"{GATEWAY_SERVER}__echo"
ROWS = [("http", "tcp"), ("ws", "tcp"), ("http", "uds"), ("ws", "uds")]
LABELS = {"http": "Streamable HTTP", "ws": "WebSocket", "tcp": "TCP", "uds": "Unix socket"}


# ---- the client (its own process) ------------------------------------------------------------


def _connect(address: str) -> socket.socket:
    """``tcp:PORT`` or ``uds:PATH``."""
    kind, _, where = address.partition(":")
    if kind == "uds":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(where)
        return sock
    sock = socket.create_connection(("127.0.0.1", int(where)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class BlockingWebSocket:
    """One client WebSocket: a text frame out (masked with a zero key, which leaves the payload
    as it is), a text frame in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mcp\r\n\r\n"
            ).encode()
        )
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        if not self.buf.startswith(b"HTTP/1.1 101"):
            raise SystemExit(f"the WebSocket handshake failed: {self.buf[:300]!r}")
        self.buf = self.buf[end + 4 :]

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def _take(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._fill()
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    @staticmethod
    def frame(payload: bytes) -> bytes:
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        return head + b"\x00\x00\x00\x00" + payload

    def exchange(self, frame: bytes) -> bytes:
        self.sock.sendall(frame)
        first, second = self._take(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._take(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._take(8))[0]
        if first & 0x0F != 0x1:
            raise ConnectionError(f"expected a text frame, got opcode {first & 0x0F}")
        return self._take(size)


def client(kind: str, address: str, n: int, warmup: int) -> dict[str, Any]:
    sock = _connect(address)
    if kind == "ws":
        ws = BlockingWebSocket(sock)
        message = BlockingWebSocket.frame(call_body(TOOL))

        def once() -> bytes:
            return ws.exchange(message)
    else:
        http = BlockingHttp.__new__(BlockingHttp)
        http.sock, http.buf = sock, b""
        request = http_request("http://localhost/mcp", TOOL)

        def once() -> bytes:
            status, body = http.exchange(request)
            return body if status == 200 else b""

    for _ in range(warmup):
        body = once()
        if not is_good_result(body):
            raise SystemExit(f"bad answer during warm-up: {body[:300]!r}")
    clock = time.perf_counter_ns
    samples, bad = [], 0
    for _ in range(n):
        start = clock()
        body = once()
        samples.append(clock() - start)
        bad += not is_good_result(body)
    sock.close()
    return {**summarize(samples), "bad": bad}


# ---- the orchestration -----------------------------------------------------------------------


def _config(path: Path, listen: dict[str, Any]) -> None:
    upstream = {"command": sys.executable, "args": [str(BENCH / "upstream_lean.py"), "stdio"]}
    config = {
        "gateway": {"log_level": "warning", **listen},
        "servers": {GATEWAY_SERVER: upstream},
        "packs": {"path": None},
        "audit": {"enabled": False},
    }
    path.write_text(json.dumps(config))  # JSON is YAML


def _ready(address: str) -> bool:
    try:
        sock = _connect(address)
    except OSError:
        return False
    try:
        sock.sendall(b"GET /ready?strict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        sock.settimeout(2)
        return sock.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()


def measure(kind: str, address: str, gateway_pid: int, n: int, warmup: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "client", kind, address, str(n), str(warmup)]
    before = cpu_seconds(gateway_pid)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    spent = cpu_seconds(gateway_pid) - before
    if done.returncode != 0:
        raise BenchError(f"client {kind} {address} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["bad"]:
        raise BenchError(f"{result['bad']} bad answers from {kind} {address}")
    # the CPU includes the warm-up calls: divide by every call made
    result["cpu_us"] = spent / (n + warmup) * 1e6
    return result


def run(rounds: int, calls: int, warmup: int) -> dict[tuple[str, str], list[dict[str, Any]]]:
    workdir = Path(tempfile.mkdtemp(prefix="catalyst-bench-transports-"))
    procs = Processes(workdir)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {row: [] for row in ROWS}
    try:
        port = free_port()
        _config(workdir / "tcp.yaml", {"host": "127.0.0.1", "port": port})
        _config(workdir / "uds.yaml", {"uds": str(workdir / "gw.sock")})
        gateways = {
            "tcp": (procs.start("gateway-tcp", gateway_argv(workdir / "tcp.yaml")), f"tcp:{port}"),
            "uds": (
                procs.start("gateway-uds", gateway_argv(workdir / "uds.yaml")),
                f"uds:{workdir / 'gw.sock'}",
            ),
        }
        for name, (proc, address) in gateways.items():
            wait_until(lambda a=address: _ready(a), proc, f"the {name} gateway")
        for index in range(rounds):
            order = ROWS[index % len(ROWS) :] + ROWS[: index % len(ROWS)]
            for kind, listener in order:
                proc, address = gateways[listener]
                results[(kind, listener)].append(measure(kind, address, proc.pid, calls, warmup))
            print(f"round {index + 1}/{rounds} done", file=sys.stderr)
    finally:
        procs.stop_all()
    return results


def report(results: dict[tuple[str, str], list[dict[str, Any]]], calls: int) -> str:
    lines = [
        f"`tools/call` of the lean stdio echo through `catalyst serve`, {calls} sequential calls "
        f"on one connection per round; median of {len(next(iter(results.values())))} rounds.",
        "",
        "| transport | listener | p50 ms | p99 ms | gateway CPU µs/call |",
        "|---|---|--:|--:|--:|",
    ]
    for kind, listener in ROWS:
        rows = results[(kind, listener)]
        lines.append(
            f"| {LABELS[kind]} | {LABELS[listener]} "
            f"| {median(r['median_ms'] for r in rows):.3f} "
            f"| {median(r['p99_ms'] for r in rows):.3f} "
            f"| {median(r['cpu_us'] for r in rows):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if argv[:1] == ["client"]:
        kind, address, n, warmup = argv[1], argv[2], int(argv[3]), int(argv[4])
        print(json.dumps(client(kind, address, n, warmup)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args(argv)
    try:
        results = run(args.rounds, args.calls, args.warmup)
    except BenchError as exc:
        raise SystemExit(f"benchmark failed: {exc}") from exc
    print(report(results, args.calls))


if __name__ == "__main__":
    main(sys.argv[1:])
