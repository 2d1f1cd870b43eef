"""What several pages need: every tool the caller may see, and page numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from catalyst_mcp.web.routing import PageError, PageRequest, need

__all__ = ["every_tool", "page_number"]


async def every_tool(request: PageRequest) -> AsyncIterator[dict[str, Any]]:
    """Every tool the caller may see, page after page of ``GET /api/v1/tools``."""
    cursor: str | None = None
    while True:
        page = need(await request.api.get("/tools", cursor=cursor))
        for tool in page["tools"]:
            yield tool
        cursor = page.get("nextCursor")
        if not cursor:
            return


def page_number(request: PageRequest) -> int:
    """The ``page`` query parameter (1 when absent); PageError 422 when it is not a number."""
    raw = request.query.get("page", "1")
    try:
        number = int(raw)
    except ValueError:
        raise PageError(422, "page must be a number") from None
    return max(1, number)
