"""Wire bytes shared by the benchmark's clients: one modern (2026-07-28) ``tools/call``.

Every request is self-contained: protocol version and client capabilities travel in
``params._meta`` and are mirrored in the ``MCP-Protocol-Version`` / ``Mcp-Method`` /
``Mcp-Name`` headers, so no session or handshake is needed.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import orjson

PROTOCOL_VERSION = "2026-07-28"
ECHO_TEXT = "hello, gateway"
META = {
    "io.modelcontextprotocol/protocolVersion": PROTOCOL_VERSION,
    "io.modelcontextprotocol/clientCapabilities": {},
}


def call_body(tool: str, request_id: int | str = 1) -> bytes:
    """The JSON-RPC body of ``tools/call`` ``tool`` with ``{"text": ECHO_TEXT}``."""
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": tool, "arguments": {"text": ECHO_TEXT}, "_meta": META},
        }
    )


def discover_body(request_id: int | str = 1) -> bytes:
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "server/discover", "params": {"_meta": META}}
    )


def call_headers(tool: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": PROTOCOL_VERSION,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }


def http_request(url: str, tool: str) -> bytes:
    """A complete keep-alive HTTP/1.1 POST of ``tools/call`` to ``url``."""
    parts = urlsplit(url)
    body = call_body(tool)
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in call_headers(tool).items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def is_good_result(body: bytes) -> bool:
    """A JSON-RPC result of the echo tool that is not a tool error (checked on bytes, cheaply)."""
    return b'"result"' in body and b'"isError":true' not in body and ECHO_TEXT.encode() in body
