"""Load and latency clients, always run in their own process (never in a server's).

    python bench/clients.py http-lat URL TOOL N WARMUP
        N sequential POSTs on one keep-alive connection (after WARMUP unmeasured ones);
        prints {"median_ms", "p99_ms", "mean_ms", "n"} as JSON.
    python bench/clients.py http-tput URL TOOL CONNECTIONS SECONDS
        Fallback when wrk is missing: raw asyncio keep-alive connections, one request in
        flight on each; prints {"rps", "requests", "bad"}.
    python bench/clients.py stdio-driver PYTHON SCRIPT [ARGS...]
        Starts a stdio MCP server and takes commands on stdin, one per line, answering each with
        one JSON line: "pid", "lat N WARMUP TOOL", "tput CONCURRENCY SECONDS TOOL", "quit".

Clients are deliberately simple blocking loops over raw sockets and pipes: a few microseconds of
client work per request, identical for the direct and the gateway measurement.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mcpwire import call_body, discover_body, http_request, is_good_result


def summarize(samples_ns: list[int]) -> dict[str, Any]:
    ordered = sorted(samples_ns)
    n = len(ordered)
    mid = n // 2
    median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    p99 = ordered[max(0, -(-99 * n // 100) - 1)]  # nearest rank
    return {
        "median_ms": median / 1e6,
        "p99_ms": p99 / 1e6,
        "mean_ms": sum(ordered) / n / 1e6,
        "n": n,
    }


# ---- HTTP -------------------------------------------------------------------------------------


class BlockingHttp:
    """One keep-alive HTTP/1.1 connection; reads Content-Length or chunked responses."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = self.buf[:end].decode("latin-1").split("\r\n")
        self.buf = self.buf[end + 4 :]
        status = int(head[0].split(" ", 2)[1])
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            size = int(fields["content-length"])
            while len(self.buf) < size:
                self._fill()
            body, self.buf = self.buf[:size], self.buf[size:]
            return status, body
        if fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                while (eol := self.buf.find(b"\r\n")) < 0:
                    self._fill()
                size = int(self.buf[:eol].split(b";")[0], 16)
                while len(self.buf) < eol + 2 + size + 2:
                    self._fill()
                parts.append(self.buf[eol + 2 : eol + 2 + size])
                self.buf = self.buf[eol + 2 + size + 2 :]
                if size == 0:
                    return status, b"".join(parts)
        raise ConnectionError("response without Content-Length or chunked encoding")


def http_latency(url: str, tool: str, n: int, warmup: int) -> dict[str, Any]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = BlockingHttp(parts.hostname or "127.0.0.1", parts.port or 80)
    request = http_request(url, tool)
    clock = time.perf_counter_ns
    for _ in range(warmup):
        status, body = conn.exchange(request)
        if status != 200 or not is_good_result(body):
            raise SystemExit(f"bad response during warm-up: {status} {body[:300]!r}")
    samples = []
    bad = 0
    for _ in range(n):
        start = clock()
        status, body = conn.exchange(request)
        samples.append(clock() - start)
        if status != 200 or not is_good_result(body):
            bad += 1
    return {**summarize(samples), "bad": bad}


class _TputConn(asyncio.Protocol):
    """Keeps one request in flight; a response is complete once Content-Length bytes arrived."""

    def __init__(self, request: bytes, stats: dict[str, int]) -> None:
        self.request = request
        self.stats = stats
        self.buf = b""
        self.transport: Any = None
        self.running = True

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            at = head.find(b"content-length:")
            if at < 0:
                raise SystemExit("the fallback load generator needs Content-Length responses")
            size = int(head[at + 15 :].split(b"\r\n", 1)[0])
            if len(self.buf) < end + 4 + size:
                return
            body = self.buf[end + 4 : end + 4 + size]
            ok = head.startswith(b"http/1.1 200") and is_good_result(body)
            self.buf = self.buf[end + 4 + size :]
            self.stats["requests"] += 1
            self.stats["bad"] += not ok
            if self.running:
                self.transport.write(self.request)


async def _http_tput(url: str, tool: str, connections: int, seconds: float) -> dict[str, Any]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    request = http_request(url, tool)
    stats = {"requests": 0, "bad": 0}
    conns = []
    for _ in range(connections):
        _, proto = await loop.create_connection(
            lambda: _TputConn(request, stats), parts.hostname, parts.port
        )
        proto.transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        conns.append(proto)
    start = time.perf_counter()
    stats["requests"] = 0
    await asyncio.sleep(seconds)
    done, elapsed = stats["requests"], time.perf_counter() - start
    for proto in conns:
        proto.running = False
        proto.transport.close()
    return {"rps": done / elapsed, "requests": done, "bad": stats["bad"]}


# ---- stdio ------------------------------------------------------------------------------------


class StdioDriver:
    """Owns one stdio MCP server process and speaks newline-delimited JSON-RPC to it."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=sys.stderr, bufsize=0
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        self.buf = b""
        self.next_id = 1
        answer = self.roundtrip(discover_body(self._id()) + b"\n")
        if b"2026-07-28" not in answer:
            raise SystemExit(f"the stdio server did not go modern: {answer[:300]!r}")

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _write(self, data: bytes) -> None:
        while data:
            data = data[os.write(self.wfd, data) :]

    def _line(self) -> bytes:
        while (eol := self.buf.find(b"\n")) < 0:
            chunk = os.read(self.rfd, 262144)
            if not chunk:
                raise SystemExit("the stdio server closed its output")
            self.buf += chunk
        line, self.buf = self.buf[:eol], self.buf[eol + 1 :]
        return line

    def roundtrip(self, data: bytes) -> bytes:
        self._write(data)
        return self._line()

    def latency(self, n: int, warmup: int, tool: str) -> dict[str, Any]:
        requests = [call_body(tool, self._id()) + b"\n" for _ in range(n + warmup)]
        for data in requests[:warmup]:
            line = self.roundtrip(data)
            if not is_good_result(line):
                raise SystemExit(f"bad stdio response during warm-up: {line[:300]!r}")
        clock = time.perf_counter_ns
        samples = []
        bad = 0
        for data in requests[warmup:]:
            start = clock()
            line = self.roundtrip(data)
            samples.append(clock() - start)
            bad += not is_good_result(line)
        return {**summarize(samples), "bad": bad}

    def throughput(self, concurrency: int, seconds: float, tool: str) -> dict[str, Any]:
        prefix, _, suffix = call_body(tool, 999999937).partition(b"999999937")
        suffix += b"\n"
        ident = self.next_id + 1000

        def batch(count: int) -> bytes:
            nonlocal ident
            out = []
            for _ in range(count):
                ident += 1
                out.append(b"%s%d%s" % (prefix, ident, suffix))
            return b"".join(out)

        self._write(batch(concurrency))
        done = bad = 0
        start = time.perf_counter()
        deadline = start + seconds
        buf = self.buf
        while True:
            chunk = os.read(self.rfd, 262144)
            if not chunk:
                raise SystemExit("the stdio server closed its output")
            buf += chunk
            lines = buf.split(b"\n")
            buf = lines.pop()
            for line in lines:
                bad += not is_good_result(line)
            done += len(lines)
            if time.perf_counter() >= deadline:
                break
            self._write(batch(len(lines)))
        elapsed = time.perf_counter() - start
        # drain what is still in flight so the next command starts clean
        outstanding = concurrency - len(lines)
        self.buf = buf
        for _ in range(outstanding):
            self._line()
        self.next_id = ident + 1
        return {"rps": done / elapsed, "requests": done, "bad": bad}

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def stdio_driver(argv: list[str]) -> None:
    driver = StdioDriver(argv)
    out = sys.stdout
    try:
        for raw in sys.stdin:
            cmd = raw.split()
            if not cmd:
                continue
            if cmd[0] == "quit":
                break
            if cmd[0] == "pid":
                reply: dict[str, Any] = {"pid": driver.proc.pid}
            elif cmd[0] == "lat":
                reply = driver.latency(int(cmd[1]), int(cmd[2]), cmd[3])
            elif cmd[0] == "tput":
                reply = driver.throughput(int(cmd[1]), float(cmd[2]), cmd[3])
            else:
                reply = {"error": f"unknown command {cmd[0]!r}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        driver.close()


def main(argv: list[str]) -> None:
    mode = argv[1]
    if mode == "http-lat":
        result = http_latency(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif mode == "http-tput":
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:
            runner = asyncio.run
        result = runner(_http_tput(argv[2], argv[3], int(argv[4]), float(argv[5])))
    elif mode == "stdio-driver":
        stdio_driver(argv[2:])
        return
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
