"""The pack benchmark's REST endpoint: ``GET /items/{id}`` answers a small JSON object.

A bare ASGI app under uvicorn (httptools, uvloop, no access log), so the endpoint costs little
next to what is measured. Run as its own process:

    python bench/packs_endpoint.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
import uvicorn

HEADERS = [(b"content-type", b"application/json")]
NOT_FOUND = b'{"message":"no such item"}'


def item(item_id: int) -> bytes:
    """About 200 bytes of JSON: what a small REST API returns for one record."""
    return orjson.dumps(
        {
            "id": item_id,
            "name": f"Item {item_id}",
            "sku": f"SKU-{item_id:06d}",
            "price_cents": 1299 + item_id % 100,
            "currency": "EUR",
            "tags": ["bench", "sample"],
            "stock": {"available": True, "quantity": 42, "warehouse": "north"},
            "updated_at": "2026-01-15T10:00:00Z",
        }
    )


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    tail = path[len("/items/") :] if path.startswith("/items/") else ""
    if scope["method"] == "GET" and tail.isdigit():
        status, body = 200, item(int(tail))
    else:
        status, body = 404, NOT_FOUND
    headers = [*HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    port = int(sys.argv[1])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
