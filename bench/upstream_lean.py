"""A near-zero-cost MCP upstream, so the gateway's own cost can be seen against it.

    python bench/upstream_lean.py http PORT   # bare ASGI handler, uvicorn + httptools + uvloop
    python bench/upstream_lean.py stdio       # a blocking JSON-lines loop

It speaks just enough of the modern (2026-07-28) era for the gateway and the benchmark:
``server/discover``, ``tools/list`` (one ``echo`` tool) and ``tools/call`` of ``echo``; any
notification gets 202 (HTTP) or no answer (stdio). It checks nothing a real server would check:
it is a floor, not an example to follow.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import orjson

VERSION = "2026-07-28"
SERVER_INFO = {"name": "lean-echo", "version": "1.0.0"}
META = {"io.modelcontextprotocol/serverInfo": SERVER_INFO}
ECHO_TOOL = {
    "name": "echo",
    "description": "Echo text back.",
    "inputSchema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
}


def answer(message: dict[str, Any]) -> dict[str, Any] | None:
    """The response to one decoded message (None for a notification)."""
    if "id" not in message:
        return None
    method = message.get("method")
    params = message.get("params") or {}
    if method == "tools/call":
        text = (params.get("arguments") or {}).get("text", "")
        result: dict[str, Any] = {
            "content": [{"type": "text", "text": text}],
            "structuredContent": {"result": text},
            "isError": False,
            "resultType": "complete",
            "_meta": META,
        }
    elif method == "server/discover":
        result = {
            "supportedVersions": [VERSION],
            "capabilities": {"tools": {"listChanged": True}},
            "resultType": "complete",
            "_meta": META,
        }
    elif method == "tools/list":
        result = {"tools": [ECHO_TOOL], "resultType": "complete", "_meta": META}
    else:
        error = {"code": -32601, "message": "Method not found", "data": method}
        return {"jsonrpc": "2.0", "id": message["id"], "error": error}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    try:
        response = answer(orjson.loads(body))
    except (orjson.JSONDecodeError, AttributeError):
        response = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "bad"}}
    if response is None:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    data = orjson.dumps(response)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def serve_stdio() -> None:
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        if line.isspace():
            continue
        response = answer(orjson.loads(line))
        if response is not None:
            data = orjson.dumps(response) + b"\n"
            while data:
                data = data[os.write(1, data) :]


def main(argv: list[str]) -> None:
    kind = argv[1] if len(argv) > 1 else "stdio"
    if kind == "stdio":
        serve_stdio()
        return
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(argv[2]),
        http="httptools",
        loop="uvloop",
        lifespan="on",
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
        # a gateway's pooled connection may idle for minutes between a benchmark's batches (under
        # valgrind above all): closing it after uvicorn's default 5 s would fail the next call
        timeout_keep_alive=600,
    )


if __name__ == "__main__":
    main(sys.argv)
