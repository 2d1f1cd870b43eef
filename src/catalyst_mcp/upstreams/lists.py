"""An upstream's lists: its tools, resources, resource templates and prompts, fetched page by
page (:func:`fetch_list`) and kept fresh (:class:`ServerLists`).

What is kept is served to every client without asking the server again. A list is fetched again
when the server says it changed (a ``list_changed`` notification), when its ``ttlMs`` ran out,
or, from a modern server that sends neither hint, each time it is asked for. Tools lists are
reviewed against their pinned definitions first when the server's tools are pinned
(:mod:`catalyst_mcp.trust.pinning`), and the tools' ``x-mcp-header`` arguments are noted for the
calls (``Mcp-Param-*`` headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from catalyst_mcp.errors import CatalystError, UpstreamError, UpstreamRejected
from catalyst_mcp.protocol.headers import encode_header_value, header_text, param_headers
from catalyst_mcp.providers import LIST_KINDS, ListKind
from catalyst_mcp.upstreams.session import UpstreamSession

if TYPE_CHECKING:
    from catalyst_mcp.trust.pinning import ToolPins

__all__ = ["CAPABILITY_OF", "CHANGED", "ServerLists", "fetch_list"]

log = logging.getLogger("catalyst.upstream")

LIST_METHODS: dict[ListKind, str] = {
    "tools": "tools/list",
    "resources": "resources/list",
    "resourceTemplates": "resources/templates/list",
    "prompts": "prompts/list",
}
CAPABILITY_OF: dict[ListKind, str] = {
    "tools": "tools",
    "resources": "resources",
    "resourceTemplates": "resources",
    "prompts": "prompts",
}
CHANGED: dict[str, tuple[ListKind, ...]] = {
    "notifications/tools/list_changed": ("tools",),
    "notifications/resources/list_changed": ("resources", "resourceTemplates"),
    "notifications/prompts/list_changed": ("prompts",),
}
IDENTITY_FIELD: dict[ListKind, str] = {
    "tools": "name",
    "resources": "uri",
    "resourceTemplates": "uriTemplate",
    "prompts": "name",
}
MAX_PAGES = 1000


async def fetch_list(
    session: UpstreamSession, kind: ListKind, timeout: float
) -> tuple[list[dict[str, Any]], Any]:
    """Every well-formed entry of ``kind``, following cursors, and the last page's ``ttlMs``
    (as sent: the caller checks it). A list declared but not implemented (-32601) is empty."""
    items: list[dict[str, Any]] = []
    cursor: Any = None
    ttl: Any = None
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {} if cursor is None else {"cursor": cursor}
        if session.era == "modern":
            params["_meta"] = session.meta()
        try:
            result = await session.request(LIST_METHODS[kind], params, timeout=timeout)
        except UpstreamRejected as exc:
            if exc.code == -32601:  # declared but not implemented: treat as empty
                break
            raise
        key = IDENTITY_FIELD[kind]
        for item in result.get(kind) or []:
            if isinstance(item, dict) and isinstance(item.get(key), str):
                items.append(item)
            else:
                log.warning("%s: ignoring a malformed entry in %s", session.server, kind)
        ttl = result.get("ttlMs")
        cursor = result.get("nextCursor")
        if not isinstance(cursor, str):
            break

    return items, ttl


class ServerLists:
    """The lists one upstream (``name``) serves, fetched from whichever session ``current``
    returns within ``timeout`` seconds a list; ``changed`` is told which kinds changed."""

    def __init__(
        self,
        name: str,
        timeout: float,
        current: Callable[[], UpstreamSession | None],
        changed: Callable[[set[ListKind]], None],
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.current = current
        self.changed = changed
        self.served: dict[ListKind, list[dict[str, Any]]] = {k: [] for k in LIST_KINDS}
        self.pins: ToolPins | None = None  # see use_pins
        self._expires: dict[ListKind, float] = {}
        self._param_headers: dict[str, list[tuple[str, str]]] = {}
        self._refreshing: dict[ListKind, asyncio.Task[None]] = {}

    def use_pins(self, pins: ToolPins) -> None:
        """Review every tools list that arrives against its pinned definitions: tools that
        changed since they were approved are held back (:mod:`catalyst_mcp.trust.pinning`)."""
        self.pins = pins
        pins.on_release = self._serve_tools

    async def fetch_all(self, session: UpstreamSession) -> None:
        """Fetch every list ``session`` declares (a new connection's first)."""
        for kind in LIST_KINDS:
            if CAPABILITY_OF[kind] in session.capabilities:
                await self._fetch(session, kind)

    async def _fetch(self, session: UpstreamSession, kind: ListKind) -> None:
        items, ttl = await fetch_list(session, kind, self.timeout)
        if kind == "tools" and self.pins is not None:
            items = await self.pins.review(items)
        self.served[kind] = items
        if isinstance(ttl, int | float) and ttl > 0:
            self._expires[kind] = time.monotonic() + ttl / 1000
        elif session.era == "modern" and "listChanged" not in session.capabilities.get(
            CAPABILITY_OF[kind], {}
        ):
            self._expires[kind] = time.monotonic()  # no hint, no notifications: ask again
        else:
            self._expires.pop(kind, None)
        if kind == "tools":
            self._param_headers = {
                tool["name"]: headers for tool in items if (headers := param_headers(tool))
            }

    def _serve_tools(self, tools: list[dict[str, Any]]) -> None:
        """Serve ``tools`` now (held tools an administrator approved meanwhile)."""
        if self.current() is None:
            return  # the next connection lists and reviews them again
        self.served["tools"] = tools
        self._param_headers = {
            tool["name"]: headers for tool in tools if (headers := param_headers(tool))
        }
        self.changed({"tools"})

    def withheld(self, kind: ListKind, name: str) -> CatalystError | None:
        """Why the unlisted ``name`` must not be called: a tool held back by its pin."""
        pins = self.pins
        return pins.refusal(name) if pins is not None and kind == "tools" else None

    async def refresh(self) -> None:
        """Fetch again the lists whose time is up."""
        session = self.current()
        if session is None or not self._expires:
            return
        now = time.monotonic()
        changed: set[ListKind] = set()
        for kind in [k for k, at in self._expires.items() if at <= now]:
            before = self.served[kind]
            with contextlib.suppress(UpstreamError):
                await self._fetch(session, kind)
            if self.served[kind] != before:
                changed.add(kind)
        if changed:
            self.changed(changed)

    def refetch(self, kind: ListKind) -> None:
        """The server says ``kind`` changed: fetch it again in the background (once more after
        a fetch already under way)."""
        running = self._refreshing.get(kind)
        if running is not None and not running.done():
            running.add_done_callback(lambda _: self.refetch(kind))
            return
        self._refreshing[kind] = asyncio.create_task(self._refetch_now(kind))

    async def _refetch_now(self, kind: ListKind) -> None:
        session = self.current()
        if session is None:
            return
        try:
            await self._fetch(session, kind)
        except UpstreamError as exc:
            log.warning("%s: could not refresh %s: %s", self.name, kind, exc)
            return
        self.changed({kind})

    def clear(self) -> None:
        """The server is gone for a while: serve nothing until it is back."""
        had_items = any(self.served.values())
        self.served = {k: [] for k in LIST_KINDS}
        if had_items:
            self.changed(set(LIST_KINDS))

    def headers_for(self, params: dict[str, Any]) -> dict[str, str] | None:
        """The ``Mcp-Param-*`` headers of a modern ``tools/call`` with ``params``."""
        wanted = self._param_headers.get(params.get("name", ""))
        if not wanted:
            return None
        arguments = params.get("arguments") or {}
        headers = {}
        for header, arg in wanted:
            value = arguments.get(arg)
            if value is None:
                continue
            headers[f"Mcp-Param-{header}"] = encode_header_value(header_text(value))
        return headers

    def stop(self) -> None:
        for task in self._refreshing.values():
            task.cancel()
        if self.pins is not None:
            self.pins.close()
