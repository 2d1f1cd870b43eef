"""Server-Sent Events: encode events for clients, decode event streams from upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = ["SseDecoder", "SseEvent", "encode_event", "iter_events"]


@dataclass(slots=True)
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


def encode_event(data: bytes, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One SSE event carrying ``data`` (a JSON document: never contains a raw newline)."""
    head = b""
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    return head + b"data: " + data + b"\n\n"


class SseDecoder:
    """Incremental decoder: feed bytes as they arrive, get complete events back."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = SseEvent()
        self._data: list[str] = []
        self._after_cr = False  # the last chunk ended in CR: a following LF belongs to it

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = False
        self._buffer += chunk
        events: list[SseEvent] = []
        while True:
            lf = self._buffer.find(b"\n")
            cr = self._buffer.find(b"\r")
            cut = lf if cr == -1 else cr if lf == -1 else min(lf, cr)
            if cut == -1:
                return events
            line = self._buffer[:cut]
            step = 2 if self._buffer[cut : cut + 2] == b"\r\n" else 1
            if self._buffer[cut : cut + 1] == b"\r" and cut + 1 == len(self._buffer):
                self._after_cr = True  # end the line now; drop the LF if it comes next
            self._buffer = self._buffer[cut + step :]
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            if not self._data and self._event.id is None:
                self._event = SseEvent()
                return None
            event = self._event
            event.data = "\n".join(self._data)
            self._event, self._data = SseEvent(), []
            return event if event.data or event.id is not None else None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event.event = value or "message"
        elif name == "id":
            self._event.id = value
        elif name == "retry" and value.isdigit():
            self._event.retry = int(value)
        return None


async def iter_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[SseEvent]:
    decoder = SseDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
