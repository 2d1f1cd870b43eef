"""``/events``: the latest events of the event bus (docs/events.md), newest first.

Administrators only, like the rest of the admin API; no database needed. With the memory
backend they are this instance's latest ``events.recent``; with Redis, the stream's (every
instance's). 404 while the bus is off (``events.enabled: false``); 503 when Redis cannot be
read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from catalyst_mcp.api.router import ApiError, ApiRequest, Route
from catalyst_mcp.orchestration.events.types import expand_patterns

if TYPE_CHECKING:
    from catalyst_mcp.orchestration.events.bus import EventBus

__all__ = ["EventHandlers", "EventList", "EventQuery", "EventRecord"]


class EventQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(100, ge=1, le=1000, description="At most this many events.")
    type: str | None = Field(
        None,
        max_length=500,
        description="Only these types: comma-separated globs (call.*,upstream.state_changed).",
    )

    @field_validator("type")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None:
            expand_patterns(_split(value))
        return value


class EventRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Unique; the same on every delivery of the event.")
    type: str = Field(description="The event type (docs/events.md lists them).")
    time: str = Field(description="When it was emitted: UTC, ISO 8601.")
    source: str = Field(description="The instance that emitted it.")
    data: dict[str, Any] = Field(description="Its payload.")


class EventList(BaseModel):
    model_config = ConfigDict(frozen=True)

    backend: str = Field(description="memory (this instance's events) or redis (every one's).")
    events: list[EventRecord] = Field(description="Newest first.")


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()] or ["*"]


class EventHandlers:
    def __init__(self, bus: EventBus | None) -> None:
        self.bus = bus

    async def recent(self, request: ApiRequest) -> EventList:
        bus = self.bus
        if bus is None:
            raise ApiError(404, "the event bus is off (events.enabled: false)")
        q = request.query_as(EventQuery)
        types = _split(q.type) if q.type is not None else None
        try:
            found = await bus.recent(q.limit, types)
        except Exception as exc:  # Redis away: the stream cannot be read now
            raise ApiError(503, "the event stream cannot be read now; try again") from exc
        return EventList(
            backend=bus.transport.backend,
            events=[EventRecord.model_validate(e.to_json()) for e in found],
        )

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/events",
                self.recent,
                action="admin.events.list",
                summary="The latest events of the event bus, newest first",
                tag="events",
                query=EventQuery,
                response=EventList,
                needs_storage=False,
            )
        ]
