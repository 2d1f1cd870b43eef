"""The "realistic" upstream: the official MCP SDK's ``MCPServer`` with one ``echo`` tool.

    python bench/upstream_sdk.py http PORT    # stateless Streamable HTTP, JSON responses, uvicorn
    python bench/upstream_sdk.py stdio        # the same server over stdin/stdout

This is how people typically run an SDK server: ``streamable_http_app(stateless_http=True,
json_response=True)`` under uvicorn with its defaults (httptools and uvloop when installed),
logging at warning so no access log is written.
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("bench-echo", version="1.0.0")


@server.tool()
def echo(text: str) -> str:
    """Echo text back."""
    return text


def main(argv: list[str]) -> None:
    kind = argv[1] if len(argv) > 1 else "stdio"
    if kind == "stdio":
        server.run("stdio")
        return
    import uvicorn

    app = server.streamable_http_app(stateless_http=True, json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=int(argv[2]), log_level="warning")


if __name__ == "__main__":
    main(sys.argv)
