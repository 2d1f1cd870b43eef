"""What several pages need: every tool the caller may see, page numbers, and times the API
sends (ISO 8601) as moments and ages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from catalyst_mcp.web.routing import PageError, PageRequest, need

__all__ = ["every_tool", "moment", "page_number", "seconds_between"]


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


def moment(value: Any) -> datetime | None:
    """An ISO 8601 time from the API as an aware datetime (UTC when it names no zone), or None
    for none or something else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def seconds_between(start: Any, end: Any) -> float | None:
    """Seconds from ``start`` to ``end`` (ISO 8601 times or datetimes), or None when either
    is missing."""
    first = start if isinstance(start, datetime) else moment(start)
    last = end if isinstance(end, datetime) else moment(end)
    if first is None or last is None:
        return None
    return (last - first).total_seconds()
