"""The Provider interface's defaults."""

from __future__ import annotations

from typing import Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.providers import LIST_KINDS, ListKind, Provider


class Minimal(Provider):
    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return []

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {}

    def health(self) -> dict[str, Any]:
        return {"name": self.name, "status": "ready"}


async def test_defaults() -> None:
    provider = Minimal("m", "ns")
    assert (provider.name, provider.namespace) == ("m", "ns")
    assert provider.capabilities == {}
    assert provider.instructions is None
    assert provider.may_ask is False
    await provider.start()
    await provider.refresh()
    await provider.subscribe("x")
    await provider.unsubscribe("x")
    await provider.on_resource_updated(provider, "x")
    provider.on_change(provider, {"tools"})
    await provider.stop()
    assert LIST_KINDS == ("tools", "resources", "resourceTemplates", "prompts")
