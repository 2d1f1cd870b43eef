"""The parts of ``/ready`` that need a round trip: the database and Redis.

:class:`DependencyCheck` asks each store the gateway uses whether it answers (``SELECT 1``;
Redis ``PING``), all at once and each within ``timeout`` seconds, and keeps the verdicts for
``/ready``: ``{"status": "ready"}`` or ``{"status": "failed", "error": why}`` per part. A
probe that polls ``/ready`` many times a second causes one check per ``max_age`` seconds, not one
per request. The reasons name the store (its host or file), never a password.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from catalyst_mcp.errors import CatalystError

__all__ = ["DependencyCheck"]

Probe = Callable[[], Awaitable[None]]


class DependencyCheck:
    """Named probes (``database``, ``redis``) and their latest verdicts."""

    def __init__(
        self, probes: dict[str, tuple[Probe, str]], *, timeout: float = 2.0, max_age: float = 1.0
    ) -> None:
        """``probes``: name -> (the check, the store in words for reasons)."""
        self.probes = probes
        self.timeout = timeout
        self.max_age = max_age
        self.results: dict[str, dict[str, Any]] = {}
        self._checked_at = -float("inf")
        self._running: asyncio.Task[None] | None = None

    async def check(self) -> dict[str, dict[str, Any]]:
        """Fresh verdicts (at most ``max_age`` s old); concurrent callers share one check."""
        if not self.probes or time.monotonic() - self._checked_at < self.max_age:
            return self.results
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(self._check_all())
        await asyncio.shield(self._running)
        return self.results

    async def _check_all(self) -> None:
        names = list(self.probes)
        verdicts = await asyncio.gather(*(self._one(*self.probes[n]) for n in names))
        self.results = dict(zip(names, verdicts, strict=True))
        self._checked_at = time.monotonic()

    async def _one(self, probe: Probe, where: str) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout):
                await probe()
        except TimeoutError:
            return {"status": "failed", "error": f"{where} did not answer within {self.timeout:g}s"}
        except CatalystError as exc:  # the database's: already names it, safely
            return {"status": "failed", "error": exc.message}
        except Exception as exc:  # a driver's message may carry a URL: the class only
            return {"status": "failed", "error": f"{where} failed: {type(exc).__name__}"}
        return {"status": "ready"}
