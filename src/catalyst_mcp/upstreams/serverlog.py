"""The tail of one server's stderr, kept in memory for ``catalyst servers logs``.

Every line a stdio server writes to stderr goes to the gateway log (as before) and into its
server's :class:`ServerLog`: a ring buffer of ``log_lines`` lines, one per configured server,
shared by all its processes (per-user and per-session ones too, each line labelled with the
process it came from) and kept across restarts, so the lines before a crash are still there
after it. Each line gets a sequence number: a reader asks for the lines after the last one it
saw, and learns how many it missed if the buffer moved on meanwhile (``--follow``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["LogLine", "ServerLog"]


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of stderr: its number, when it arrived, from which process."""

    seq: int
    at: float  # time.time()
    text: str
    pid: int | None
    instance: str  # "shared", "user <name>" or "session <id>"


class ServerLog:
    """The last ``lines`` lines of one server's stderr."""

    def __init__(self, lines: int) -> None:
        self._lines: deque[LogLine] = deque(maxlen=lines)
        self._next = 1
        self._arrived = asyncio.Event()

    @property
    def capacity(self) -> int:
        assert self._lines.maxlen is not None
        return self._lines.maxlen

    @property
    def last_seq(self) -> int:
        """The number of the newest line (0 before the first)."""
        return self._next - 1

    def resize(self, lines: int) -> None:
        """Keep at most ``lines`` lines from now on (the newest, if there are more)."""
        if lines != self.capacity:
            self._lines = deque(self._lines, maxlen=lines)

    def append(self, text: str, pid: int | None = None, instance: str = "shared") -> None:
        self._lines.append(LogLine(self._next, time.time(), text, pid, instance))
        self._next += 1
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    def tail(self, count: int) -> list[LogLine]:
        """The newest ``count`` lines, oldest first."""
        if count <= 0:
            return []
        lines = list(self._lines)
        return lines[-count:]

    def after(self, seq: int, limit: int) -> tuple[list[LogLine], int]:
        """At most ``limit`` lines numbered after ``seq``, oldest first, and how many lines
        after ``seq`` are no longer kept (the buffer moved past them)."""
        kept = list(self._lines)
        first = kept[0].seq if kept else self._next
        missed = max(0, first - seq - 1)
        return [line for line in kept if line.seq > seq][:limit], missed

    async def wait(self, seq: int, timeout: float) -> bool:
        """Wait at most ``timeout`` s for a line numbered after ``seq``; whether one came."""
        if self.last_seq > seq:
            return True
        arrived = self._arrived
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await arrived.wait()
        return self.last_seq > seq
