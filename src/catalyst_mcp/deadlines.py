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
from types import TracebackType

__all__ = ["CoarseTimeout", "Deadlines", "deadlines"]


class Deadlines:
    def __init__(self, tick: float = 0.05) -> None:
        self.tick = tick
        self._due: dict[Hashable, tuple[float, Callable[[], object]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def add(
        self,
        key: Hashable,
        delay: float,
        callback: Callable[[], object],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Call ``callback`` about ``delay`` seconds from now, unless ``key`` is discarded.

        ``loop``: the running loop, when the caller has it at hand (looking it up costs a
        system call on Python 3.11)."""
        if loop is None:
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


class CoarseTimeout:
    """``async with CoarseTimeout(seconds):`` — :func:`asyncio.timeout` on the coarse clock.

    The body is cancelled about ``seconds`` (up to one tick more) after entering, and the
    cancellation leaves the block as :class:`TimeoutError`, exactly as with ``asyncio.timeout``
    (a cancellation from elsewhere stays a cancellation). It costs a dict insert and a delete
    instead of a loop timer: for the time limits of pack calls, which almost never fire.

    Entering and leaving need no awaiting, so a plain ``with`` (inside a task) works too and
    spares the hot path two coroutines; :meth:`enter` and :meth:`exit` serve other context
    managers that hold one.
    """

    __slots__ = ("_cancelling", "_delay", "_fired", "_task")

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._fired = False
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0

    def enter(self) -> None:
        """Start the clock for the current task."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always inside a task under asyncio
            raise RuntimeError("CoarseTimeout needs a running task")
        self._task = task
        self._cancelling = task.cancelling()
        deadlines.add(self, self._delay, self._fire, task.get_loop())

    def _fire(self) -> None:
        if self._task is not None and not self._task.done():
            self._fired = True
            self._task.cancel()

    def exit(self, kind: type[BaseException] | None, exc: BaseException | None) -> None:
        """Stop the clock; :class:`TimeoutError` if it fired and cancelled the body."""
        deadlines.discard(self)
        task, self._task = self._task, None
        if self._fired and task is not None:
            self._fired = False
            if task.uncancel() <= self._cancelling and kind is asyncio.CancelledError:
                raise TimeoutError from exc

    def __enter__(self) -> None:
        self.enter()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exit(kind, exc)

    async def __aenter__(self) -> None:
        self.enter()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.exit(kind, exc)
