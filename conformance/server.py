"""Serve the conformance fixture as a standalone MCP server, on Catalyst's own transports.

    python conformance/server.py --stdio       # JSON lines on stdin/stdout (catalyst.yaml)
    python conformance/server.py --port 8931   # Streamable HTTP at http://127.0.0.1:8931/mcp

It is a Catalyst gateway with no configured servers and one in-process provider, the fixture
(namespace ``""``, so its names are unprefixed). Both eras are served, like any gateway; the
conformance gateway (conformance/catalyst.yaml) reaches it in the modern era.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixture import ConformanceFixture

from catalyst_mcp.app import Gateway
from catalyst_mcp.orchestration.workflows.config import WorkflowsSettings
from catalyst_mcp.security.config import AuditSettings
from catalyst_mcp.settings import GatewaySettings, PacksSettings, Settings
from catalyst_mcp.transports import stdio


def fixture_settings(port: int = 0) -> Settings:
    """The fixture's own settings: no packs, and no audit trail, so it never opens a database
    (the gateway in front audits the calls; started over stdio, the fixture sees neither
    the tests' state folder nor the user's)."""
    return Settings(
        gateway=GatewaySettings(host="127.0.0.1", port=port),
        packs=PacksSettings(path=None),
        audit=AuditSettings(enabled=False),
        workflows=WorkflowsSettings(path=None),
    )


def build_gateway(port: int = 0) -> Gateway:
    return Gateway(fixture_settings(port), providers=[ConformanceFixture()])


async def serve_stdio() -> None:
    await stdio.serve_stdio(fixture_settings(), providers=[ConformanceFixture()])


async def serve_http(port: int) -> None:
    from catalyst_mcp.transports.serving import HttpServer

    gateway = build_gateway(port)
    print(f"conformance fixture: serving MCP at http://127.0.0.1:{port}/mcp", file=sys.stderr)
    await HttpServer(gateway.asgi, "127.0.0.1", port).serve(handle_signals=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stdio", action="store_true", help="serve one client on stdin/stdout")
    mode.add_argument("--port", type=int, help="serve Streamable HTTP on 127.0.0.1:PORT")
    options = parser.parse_args()
    # stdout carries protocol messages in --stdio mode: logs go to stderr, warnings only.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_stdio() if options.stdio else serve_http(options.port))


if __name__ == "__main__":
    main()
