"""An upstream's lists: every page of its tools, resources, resource templates or prompts."""

from __future__ import annotations

import logging
from typing import Any

from catalyst_mcp.errors import UpstreamRejected
from catalyst_mcp.providers import ListKind
from catalyst_mcp.upstreams.session import UpstreamSession

__all__ = ["CAPABILITY_OF", "CHANGED", "fetch_list"]

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
