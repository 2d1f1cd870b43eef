"""Parked cross-era calls, resumed from any instance.

A legacy upstream that asks a modern client for input mid-call keeps its call open on the
instance that made it (decision 003: the call is parked, the client gets a ``requestState``
token). Nothing of a live upstream call can move to Redis, so the token names its instance, and
a retry that reaches another instance is passed to that one over pub/sub: it resumes the call
with the retry's answers and sends back the result (or the next round of input requests),
and the progress the call reports on the way. If that instance is gone, so is the call: the
retry gets the answer an expired token gets (send the request again).
"""

from __future__ import annotations

import logging
from typing import Any

from catalyst_mcp.cluster.bus import Bus, InstanceGone
from catalyst_mcp.cluster.wire import context_from, context_of
from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import CatalystError, InvalidParams
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.protocol.mrtr import InputBridge

__all__ = ["ParkedCalls"]

log = logging.getLogger("catalyst.cluster")

GONE = "requestState is unknown or expired; send the request again"


class ParkedCalls:
    """Resumes, for other instances, the calls parked here; and passes them their retries."""

    def __init__(self, bus: Bus, bridge: InputBridge, timeout: float) -> None:
        self.bus = bus
        self.bridge = bridge
        self.timeout = timeout  # a resumed call may take as long as a call may
        bridge.instance = bus.instance
        bridge.remote = self.resume
        bus.handlers["resume"] = self._on_resume

    async def resume(self, owner: str, ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        """Resume on ``owner`` the call a retry's ``requestState`` names."""
        request = {"k": "resume", "ctx": context_of(ctx), "params": params}
        try:
            result = await self.bus.call(owner, request, self.timeout, ctx.emit)
        except InstanceGone:
            raise InvalidParams(GONE) from None
        except TimeoutError:
            raise CatalystError(
                f"the call did not finish within {self.timeout:g} seconds"
            ) from None
        if not isinstance(result, dict):
            raise CatalystError("another instance answered the retry with nothing")
        return result

    def _on_resume(self, message: dict[str, Any]) -> None:
        self.bus.spawn(self._resume_here(message))

    async def _resume_here(self, message: dict[str, Any]) -> None:
        try:
            ctx = context_from(message["ctx"])
        except (KeyError, TypeError, ValueError):
            await self.bus.reply(message, error=InvalidParams(GONE))
            return

        async def emit(outgoing: Message) -> None:
            await self.bus.emit(message, outgoing)

        ctx.emit = emit
        try:
            result = await self.bridge.run(ctx, message.get("params") or {}, _nothing)
        except CatalystError as exc:
            await self.bus.reply(message, error=exc)
            return
        except Exception:
            log.exception("resuming a parked call failed")
            await self.bus.reply(message, error=CatalystError("Internal error"))
            return
        await self.bus.reply(message, result)


async def _nothing(ctx: CallContext) -> dict[str, Any]:
    """The work of a call that is resumed, never started (the token names a parked call)."""
    raise InvalidParams(GONE)
