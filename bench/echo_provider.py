"""The lean upstream's ``echo`` tool (``upstream_lean.ECHO_TOOL``) as an in-process provider, for
the benchmarks that drive the gateway's app in their own process: it answers at once, with no
I/O, so only the gateway's work is measured. Import it after ``src`` is on ``sys.path``."""

from __future__ import annotations

from typing import Any

from upstream_lean import ECHO_TOOL

from catalyst_mcp.context import CallContext
from catalyst_mcp.providers import ListKind, Provider


class EchoProvider(Provider):
    """Answers ``arguments.text`` as text and (``structured``) as ``structuredContent.result``."""

    def __init__(self, name: str, *, structured: bool = True) -> None:
        super().__init__(name, name)
        self.structured = structured

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return [ECHO_TOOL] if kind == "tools" else []

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        text = params["arguments"]["text"]
        result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": False}
        if self.structured:
            result["structuredContent"] = {"result": text}
        return result

    def health(self) -> dict[str, Any]:
        return {"status": "ready"}
