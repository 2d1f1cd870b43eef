"""Coarse deadlines: one ticking task per event loop instead of a loop timer per request.

Every call through the gateway needs two timers it almost never fires: the upstream call's time
limit and the delay after which a long call starts watching for the client to disconnect.
Creating and cancelling a loop timer per request costs measurable CPU on the hot path
(docs/decisions/001-lean-protocol-core.md); here adding a deadline is a dict insert, and one task
fires what is due every ``tick`` seconds. Deadlines fire up to one tick late, which suits time
limits measured in seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable

__all__ = ["Deadlines", "deadlines"]


class Deadlines:
    def __init__(self, tick: float = 0.05) -> None:
        self.tick = tick
        self._due: dict[Hashable, tuple[float, Callable[[], object]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, key: Hashable, delay: float, callback: Callable[[], object]) -> None:
        """Call ``callback`` about ``delay`` seconds from now, unless ``key`` is discarded."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._task is None:
            # First use, or a new event loop (the old one's task and deadlines are gone).
            self._loop = loop
            self._due = {}
            self._task = loop.create_task(self._run())
        self._due[key] = (time.monotonic() + delay, callback)

    def discard(self, key: Hashable) -> None:
        self._due.pop(key, None)

    async def _run(self) -> None:
        try:
            while self._due:
                await asyncio.sleep(self.tick)
                now = time.monotonic()
                for key in [k for k, (when, _) in self._due.items() if when <= now]:
                    entry = self._due.pop(key, None)
                    if entry is not None:
                        entry[1]()
        finally:
            if self._task is asyncio.current_task():
                self._task = None


# One per process: the gateway's timers all tick together.
deadlines = Deadlines()
