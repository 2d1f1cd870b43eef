"""What the pooled-connection liveness check costs per request (docs/decisions/028).

    .venv/bin/python bench/keepalive.py [--rounds 7] [--requests 3000]

In one process: a loopback asyncio server answering a fixed 2-byte JSON body, and the
gateway's ``HttpClient`` sending ``--requests`` sequential POSTs on one keep-alive connection.
Each round measures both rows, in an order reversed from round to round: ``baseline`` with the
liveness check replaced by ``return False`` (the client before the fix) and ``checked`` (one
non-blocking ``poll`` per reuse). A third row times the check alone on an idle connection.
Prints Markdown: the median over rounds of each round's mean microseconds per request, and
the ratio against the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from catalyst_mcp.net.httpclient import HttpClient, _Connection

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


class Echo(asyncio.Protocol):
    """Answers every request head it sees (requests are small: one segment each)."""

    accepted = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        Echo.accepted += 1

    def data_received(self, data: bytes) -> None:
        self.transport.write(ANSWER * data.count(b"HTTP/1.1\r\n"))  # type: ignore[attr-defined]


async def per_request_us(client: HttpClient, requests: int) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        await (await client.request("POST", {}, b"{}", retry_stale=False)).read()
    return (time.perf_counter() - start) / requests * 1e6


async def main(rounds: int, requests: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/mcp"
    client = HttpClient(url)
    checked = _Connection.peer_spoke
    await per_request_us(client, 500)  # warm up
    results: dict[str, list[float]] = {"baseline": [], "checked": []}
    for index in range(rounds):
        order = ["baseline", "checked"] if index % 2 == 0 else ["checked", "baseline"]
        for name in order:
            _Connection.peer_spoke = (lambda self: False) if name == "baseline" else checked  # type: ignore[method-assign]
            results[name].append(await per_request_us(client, requests))
    _Connection.peer_spoke = checked  # type: ignore[method-assign]
    conn = client._idle[-1]
    alone = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(requests):
            conn.peer_spoke()
        alone.append((time.perf_counter() - start) / requests * 1e6)
    await client.aclose()
    server.close()
    assert Echo.accepted == 1, f"{Echo.accepted} connections: every request should reuse one"
    base = statistics.median(results["baseline"])
    print(f"{rounds} rounds x {requests} sequential POSTs, one keep-alive connection\n")
    print("| row | us per request (median) | ratio |")
    print("|---|---:|---:|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median / base:.3f} |")
    check = statistics.median(alone)
    print(f"| the check alone | {check:.2f} | {check / base:.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--asyncio", action="store_true", help="not uvloop (the gateway's)")
    args = parser.parse_args()
    if args.asyncio:
        asyncio.run(main(args.rounds, args.requests))
    else:
        import uvloop

        uvloop.run(main(args.rounds, args.requests))
