"""Is an upstream still answering? A probe after a call times out, one at intervals, and a
restart when there is no answer.

A call that times out means a slow tool or a dead server, and on stdio the difference matters:
the server reads one stream, so a process that stopped reading (a blocking call in a
single-threaded server, a stopped process) would make every later call wait out its own time
limit. After a timeout the upstream is *suspect*, and one probe decides within
``ping_timeout_seconds`` (``ping``; ``server/discover`` in the modern era, which has no ping):

- any answer, an error too, means alive: nothing happens, the call was just slow;
- no answer means dead: the upstream is restarted (stdio) or reconnected, and the calls in flight
  on it fail at once with a clear error.

While a verdict or a restart is pending (the *gate*), new calls wait for it, within their own time
limit, instead of being sent into a dead process.

Between calls, :meth:`Liveness.watch` probes every ``ping_interval_seconds``, so ``/ready`` and
the circuit breaker learn of a dead upstream before a user's call does. It probes only while no
call is in flight: those are watched by their own time limits (a timeout leads to the probe
above), and a probe queued behind a long call on a server that handles one request at a time
would condemn a healthy server. A call costs nothing here: one attribute test, no clock read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from catalyst_mcp.errors import UpstreamError, UpstreamTimeout
from catalyst_mcp.upstreams.session import UpstreamSession

__all__ = ["Liveness", "Restart", "probe"]

log = logging.getLogger("catalyst.upstream")

# Replaces a dead session, given why it is dead; returns once the new one is ready (or failed).
Restart = Callable[[UpstreamSession, str], Coroutine[Any, Any, None]]


async def probe(session: UpstreamSession, timeout: float) -> str | None:
    """None if the server answers within ``timeout`` seconds, else what went wrong."""
    method = session.ping_method
    try:
        await session.ping(timeout)
    except UpstreamTimeout:
        return f"a {method} got no answer within {timeout:g}s"
    except UpstreamError as exc:
        return f"a {method} failed: {exc}"
    return None


class Liveness:
    """The liveness checks of one upstream (see the module docstring)."""

    def __init__(self, server: str, interval: float, timeout: float, restart: Restart) -> None:
        self.server = server
        self.interval = interval
        self.timeout = timeout
        self.restart = restart
        # set while a verdict or a restart is pending: calls wait for it
        self.gate: asyncio.Task[None] | None = None

    def suspect(self, session: UpstreamSession) -> None:
        """A call on ``session`` timed out: probe it (once, however many calls timed out)."""
        if self.gate is None:
            self._hold(self._verdict(session))

    async def _verdict(self, session: UpstreamSession) -> None:
        failure = await probe(session, self.timeout)
        if failure is None:
            log.info(
                "%s: a call timed out, but it answers a %s: slow, not hung",
                self.server,
                session.ping_method,
            )
            return
        await self.restart(
            session, f"{self.server} stopped answering (a call timed out and {failure})"
        )

    async def watch(self, session: UpstreamSession, busy: Callable[[], bool]) -> None:
        """Probe ``session`` every interval while ``busy()`` is false (run it as a task; it ends
        when a probe fails and the restart begins)."""
        while True:
            await asyncio.sleep(self.interval)
            if busy() or self.gate is not None:
                continue
            failure = await probe(session, self.timeout)
            if failure is None:
                continue
            if self.gate is None:
                self._hold(self.restart(session, f"{self.server} stopped answering ({failure})"))
            return

    def _hold(self, work: Coroutine[Any, Any, None]) -> None:
        gate = asyncio.get_running_loop().create_task(work, name=f"{self.server}-liveness")
        self.gate = gate
        gate.add_done_callback(self._release)

    def _release(self, gate: asyncio.Task[None]) -> None:
        if self.gate is gate:
            self.gate = None
        if not gate.cancelled() and (error := gate.exception()) is not None:
            log.error("%s: liveness check failed: %r", self.server, error)

    async def wait(self, limit: float) -> bool:
        """Wait at most ``limit`` seconds for a pending verdict or restart to end; whether it
        did."""
        gate = self.gate
        if gate is None:
            return True
        done, _ = await asyncio.wait({gate}, timeout=limit)  # neither raises nor cancels it
        return bool(done)

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.cancel()
