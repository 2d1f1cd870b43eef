"""The one small interface every source of tools, resources and prompts implements.

Upstream MCP servers implement it today; knowledge packs and workflows implement the same shape,
so the registry, the protocol layer and the CLI never care where a tool comes from.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import CatalystError

__all__ = ["LIST_KINDS", "ListKind", "Provider"]

ListKind = Literal["tools", "resources", "resourceTemplates", "prompts"]
LIST_KINDS: tuple[ListKind, ...] = ("tools", "resources", "resourceTemplates", "prompts")


async def _no_update(provider: Provider, uri: str) -> None:
    return None


class Provider(ABC):
    """A named source of MCP tools, resources, resource templates and prompts."""

    def __init__(self, name: str, namespace: str) -> None:
        self.name = name
        self.namespace = namespace
        # Called with the kinds whose list changed; the registry tells clients.
        self.on_change: Callable[[Provider, set[ListKind]], None] = lambda p, kinds: None
        # Called when a subscribed resource changed (with the provider's own URI).
        self.on_resource_updated: Callable[[Provider, str], Awaitable[None]] = _no_update

    @abstractmethod
    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        """The current list of ``kind``, in the provider's own names (cached, no I/O)."""

    async def refresh(self) -> None:
        """Bring cached lists up to date if they may be stale (modern ``ttlMs``)."""
        return

    @abstractmethod
    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """Serve ``tools/call``, ``prompts/get``, ``resources/read`` or ``completion/complete``.

        ``params`` already carry the provider's own name or URI.
        """

    def withheld(self, kind: ListKind, name: str) -> CatalystError | None:
        """Why ``name`` (the provider's own name), which it does not list, must not be called,
        or None: a tool held back until an administrator approves its definition
        (:mod:`catalyst_mcp.trust.pinning`). Asked only for names the registry does not list."""
        return None

    async def subscribe(self, uri: str) -> None:
        """Start reporting changes of ``uri`` through :attr:`on_resource_updated`."""
        return

    async def unsubscribe(self, uri: str) -> None:
        return None

    @property
    def capabilities(self) -> dict[str, Any]:
        return {}

    @property
    def instructions(self) -> str | None:
        return None

    @property
    def may_ask(self) -> bool:
        """Whether calls may send the client requests mid-call (legacy-era upstreams do)."""
        return False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until none of this provider's calls is running (before
        a replaced provider is stopped). The default waits the whole time: it cannot know."""
        await asyncio.sleep(timeout)

    async def wait_settled(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the first attempt to become ready has ended."""
        return

    @abstractmethod
    def health(self) -> dict[str, Any]:
        """A JSON-able health report; ``status`` is ``ready`` when it can serve calls."""
