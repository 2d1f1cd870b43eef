"""Configuration changes made through one worker's API, applied by the other workers.

Without ``redis.url``, the workers of one ``catalyst serve --workers N`` still tell each other
of what the admin API changed (a role, a rule, a revoked key, a server stopped ...): the worker
that made the change sends it up its control line, the supervisor passes it to every other
worker, and each applies it as an instance applies another's announcement over Redis. The
change and how it is applied are the announcements' (``catalyst_mcp.cluster.announce``:
``ANNOUNCED``, ``appliers_for``); this is only a second way to carry them, for the workers of one
machine, at the cost of two local writes. Where that module is absent (a build without shared
state), nothing is relayed and workers pick changes up on their own schedules.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from catalyst_mcp.workers.control import ControlLine

__all__ = ["Relay"]

log = logging.getLogger("catalyst.workers")

Apply = Callable[[dict[str, str], str], Awaitable[None]]
ANNOUNCE_MODULE = "catalyst_mcp.cluster.announce"


def announcements() -> Any | None:
    """The announcements module (``ANNOUNCED``, ``appliers_for``), if this build has it."""
    try:
        return importlib.import_module(ANNOUNCE_MODULE)
    except ImportError:
        return None


class Relay:
    """One worker's side: sends its API's changes up the line, applies the others'."""

    def __init__(self, control: ControlLine, announced: frozenset[str] = frozenset()) -> None:
        self.control = control
        self.announced = announced
        self.appliers: Mapping[str, Apply] = {}
        self.applied = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, gateway: Any, module: Any | None = None) -> bool:
        """Relay ``gateway``'s changes, unless Redis carries them (``redis.url``) or this build
        announces none. Returns whether it does."""
        redis = getattr(gateway.settings, "redis", None)
        if getattr(redis, "url", None):
            return False
        module = module if module is not None else announcements()
        listeners = getattr(gateway.api, "change_listeners", None)
        if module is None or listeners is None:
            return False
        self.announced = frozenset(module.ANNOUNCED)
        self.appliers = module.appliers_for(gateway)
        listeners.append(self.changed)
        return True

    async def changed(self, action: str, params: dict[str, str], identity: Any) -> None:
        """The API made the change ``action``: tell the other workers (through the
        supervisor) before the answer goes out."""
        if action not in self.announced:
            return
        self.control.send({"event": "config", "a": action, "p": params, "by": identity.subject})
        await self.control.drain()

    def received(self, message: dict[str, Any]) -> None:
        """Another worker's change, passed on by the supervisor: apply it here."""
        action, params = str(message.get("a")), message.get("p")
        apply = self.appliers.get(action)
        if apply is None or not isinstance(params, dict):
            return
        task = asyncio.get_running_loop().create_task(
            self._apply(apply, action, params, str(message.get("by")))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _apply(self, apply: Apply, action: str, params: dict[str, str], by: str) -> None:
        try:
            await apply(params, by)
        except Exception as exc:  # the worker serves on; it catches up on its own schedule
            log.warning("applying %s of another worker failed: %s", action, exc)
            return
        self.applied += 1
        log.info("applied %s made on another worker", action)
