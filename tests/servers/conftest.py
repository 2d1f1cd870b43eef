"""Helpers for the built-in servers' tests: calling a server in-process and checking answers."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from catalyst_mcp.context import CallContext
from catalyst_mcp.servers.base import BuiltinServer

LEGACY = "2025-11-25"


def context(**extra: Any) -> CallContext:
    return CallContext(
        **{"era": "legacy", "protocol_version": LEGACY, "method": "tools/call", **extra}
    )


async def call(
    server: BuiltinServer, tool: str, ctx: CallContext | None = None, **arguments: Any
) -> dict[str, Any]:
    """Call ``tool``; a successful result is checked against the tool's output schema."""
    result = await server.call(
        "tools/call", {"name": tool, "arguments": arguments}, ctx or context()
    )
    if not result.get("isError"):
        schema = server.tools[tool].output_schema
        errors = list(Draft202012Validator(schema).iter_errors(result["structuredContent"]))
        assert not errors, f"{tool}: output does not match its schema: {errors[0].message}"
    return result


def text(result: dict[str, Any]) -> str:
    return "\n".join(b.get("text", "") for b in result["content"] if b.get("type") == "text")
