"""The call context every request carries."""

from __future__ import annotations

from catalyst_mcp.context import ANONYMOUS, CallContext, Identity


async def test_defaults_and_capabilities() -> None:
    ctx = CallContext(
        era="legacy", protocol_version="2025-11-25", client_capabilities={"sampling": {}}
    )
    assert ctx.identity is ANONYMOUS
    assert Identity("anonymous", "anonymous", ()) == ANONYMOUS
    assert ctx.can("sampling")
    assert not ctx.can("elicitation")
    assert ctx.ask is None
    assert await ctx.emit({"jsonrpc": "2.0", "method": "x"}) is None  # dropped by default
