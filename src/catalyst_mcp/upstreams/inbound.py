"""What an upstream server sends besides its answers, routed to the call it belongs to.

During a call a server may send progress, log messages and requests for the client (sampling,
elicitation, roots); between calls it sends list changes and resource updates. :class:`Inbound`
routes each one:

* progress goes to the call whose (rewritten, per upstream call) progress token it carries, under
  the token its client gave;
* a log message goes to the call it arrived with when its client's level lets it through, else to
  the gateway log;
* a request goes to the calling client, in that client's era's way;
* a list change has the list fetched again; a resource update is reported to the registry.

A message the transport cannot link to a request (stdio, legacy SSE) is attributed to the one
call in flight; with several in flight it belongs to nobody (``serialize_calls`` is the remedy).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import MethodNotFound
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.protocol.versions import log_level_allows
from catalyst_mcp.providers import ListKind
from catalyst_mcp.upstreams.http import StreamableHttpTransport
from catalyst_mcp.upstreams.lists import CHANGED
from catalyst_mcp.upstreams.session import UpstreamSession

__all__ = ["CLIENT_REQUESTS", "Inbound"]

log = logging.getLogger("catalyst.upstream")

CLIENT_REQUESTS = frozenset({"sampling/createMessage", "elicitation/create", "roots/list"})


class Inbound:
    """The messages of one upstream (``name``) on whichever session ``current`` returns.
    ``inflight`` maps each call in flight, by the token its progress carries, to its caller
    (the upstream's own table, only read here); ``refetch`` fetches a changed list again;
    ``resource_updated`` reports an updated resource URI."""

    def __init__(
        self,
        name: str,
        inflight: dict[int, CallContext],
        current: Callable[[], UpstreamSession | None],
        refetch: Callable[[ListKind], None],
        resource_updated: Callable[[str], Awaitable[None]],
    ) -> None:
        self.name = name
        self.inflight = inflight
        self.current = current
        self.refetch = refetch
        self.resource_updated = resource_updated

    async def related(self, message: Message, ctx: CallContext, token: int) -> None:
        """A message the server sent on one call's own response stream."""
        if "id" in message:
            session = self.current()
            if session is not None:
                await session.answer(message, lambda m: self.ask(ctx, m))
            return
        await self.notification(message, ctx)

    async def notification(self, message: Message, ctx: CallContext | None = None) -> None:
        """A notification, on ``ctx``'s response stream or on none."""
        method = message.get("method")
        params = message.get("params") or {}
        if method == "notifications/progress":
            target = self.inflight.get(params.get("progressToken"))  # type: ignore[arg-type]
            if target is not None and target.progress_token is not None:
                await target.emit(
                    {**message, "params": {**params, "progressToken": target.progress_token}}
                )
        elif method == "notifications/message":
            target = ctx or self._only_caller()
            if target is not None and log_level_allows(target.log_level, params.get("level")):
                await target.emit(message)
            else:
                log.info("%s[log]: %s", self.name, str(params.get("data"))[:500])
        elif method in CHANGED:
            for kind in CHANGED[method]:
                self.refetch(kind)
        elif method == "notifications/resources/updated":
            uri = params.get("uri")
            if isinstance(uri, str):
                await self.resource_updated(uri)

    def _only_caller(self) -> CallContext | None:
        """A message with no request attached: attribute it when only one call is in flight.

        Only on transports that cannot link messages to requests (stdio, legacy SSE). On
        Streamable HTTP, unrelated messages arrive on the GET stream and belong to no caller:
        routing them to whoever is calling would show one client another's requests or logs.
        """
        session = self.current()
        linked = session is not None and isinstance(session.transport, StreamableHttpTransport)
        if linked or len(self.inflight) != 1:
            return None
        return next(iter(self.inflight.values()))

    async def unrelated_request(self, message: Message) -> dict[str, Any]:
        """A request the server sent on no call's response stream."""
        ctx = self._only_caller()
        if ctx is not None:
            return await self.ask(ctx, message)
        method = message.get("method")
        if method == "roots/list":
            return {"roots": []}
        if self.inflight:
            raise MethodNotFound(
                f"{method} arrived while several calls were in flight and this transport cannot "
                f"say which one asked; set `serialize_calls: true` for {self.name}"
            )
        raise MethodNotFound(f"{method} is not available outside a client request")

    async def ask(self, ctx: CallContext, message: Message) -> dict[str, Any]:
        """Forward a server→client request to the calling client, in its era's way."""
        method = message.get("method", "")
        if method not in CLIENT_REQUESTS:
            raise MethodNotFound(f"unknown method {method}")
        capability = method.split("/")[0]
        if method == "roots/list" and not ctx.can("roots"):
            return {"roots": []}
        if ctx.ask is None or (ctx.era == "legacy" and not ctx.can(capability)):
            raise MethodNotFound(f"the calling client does not support {capability}")
        # Modern clients: the input bridge refuses an undeclared capability with -32021.
        return await ctx.ask(method, message.get("params") or {})
