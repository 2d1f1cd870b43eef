"""The resource subscriptions of one upstream, and the ``subscriptions/listen`` stream the
gateway holds open on a modern upstream.

Clients subscribe to resource URIs through the registry; the upstream keeps the set of URIs
subscribed on it (:class:`Subscriptions`) and tells the server its way:

* legacy era: ``resources/subscribe`` and ``resources/unsubscribe`` requests, sent again after
  every reconnect (:meth:`Subscriptions.resubscribe`);
* modern era: one ``subscriptions/listen`` request kept open for list changes and updates of the
  subscribed URIs (:meth:`Subscriptions.listen`); when the set of URIs changes the stream is
  reopened with the new filter, and a stream the server ends is reopened with backoff.

Notifications that arrive on the listen stream go to the upstream's notification handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from catalyst_mcp.errors import UpstreamError, UpstreamRejected
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams.session import UpstreamSession

__all__ = ["LISTEN_FLAGS", "Subscriptions"]

log = logging.getLogger("catalyst.upstream")

LISTEN_FLAGS = {
    "toolsListChanged": "tools",
    "promptsListChanged": "prompts",
    "resourcesListChanged": "resources",
}


class Subscriptions:
    """The URIs subscribed on one upstream (``name``), told to whichever session ``current``
    returns; ``notify`` handles what a listen stream delivers."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        call_timeout: float,
        current: Callable[[], UpstreamSession | None],
        notify: Callable[[Message], Awaitable[None]],
    ) -> None:
        self.name = name
        self.config = config
        self.call_timeout = call_timeout
        self.current = current
        self.notify = notify
        self.uris: set[str] = set()
        self._changed = asyncio.Event()

    def listen_filter(self, session: UpstreamSession) -> dict[str, Any]:
        caps = session.capabilities
        wanted: dict[str, Any] = {}
        for flag, capability in LISTEN_FLAGS.items():
            if (caps.get(capability) or {}).get("listChanged"):
                wanted[flag] = True
        if self.uris and can_subscribe(session):
            wanted["resourceSubscriptions"] = sorted(self.uris)
        return wanted

    async def listen(self, session: UpstreamSession) -> None:
        """Modern upstreams: keep one subscriptions/listen open for changes and updates, for as
        long as ``session`` is the current one."""
        delay = self.config.restart_initial_seconds
        while self.current() is session:
            wanted = self.listen_filter(session)
            if not wanted:
                return
            self._changed.clear()
            params = {"_meta": session.meta(), "notifications": wanted}
            call = asyncio.create_task(
                session.request(
                    "subscriptions/listen",
                    params,
                    timeout=None,
                    on_related=lambda message: self.notify(message),
                )
            )
            call.add_done_callback(_retrieve)
            changed = asyncio.create_task(self._changed.wait())
            try:
                await asyncio.wait({call, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                if not call.done():
                    call.cancel()  # stopping, or the subscription set changed
            if not call.done() or call.cancelled():
                with contextlib.suppress(asyncio.CancelledError, UpstreamError):
                    await call
                continue
            error = call.exception()
            if isinstance(error, UpstreamRejected) and error.code == -32601:
                return  # the server does not offer subscriptions after all
            if error is not None:
                log.debug("%s: listen ended: %s", self.name, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.restart_max_seconds)

    async def subscribe(self, uri: str) -> None:
        self.uris.add(uri)
        self._changed.set()
        await self._send_subscribe(uri)

    async def unsubscribe(self, uri: str) -> None:
        self.uris.discard(uri)
        self._changed.set()
        session = self.current()
        if session is not None and session.era == "legacy" and can_subscribe(session):
            with contextlib.suppress(UpstreamError):
                await session.request(
                    "resources/unsubscribe", {"uri": uri}, timeout=self.call_timeout
                )

    async def resubscribe(self) -> None:
        """After a reconnect: subscribe the new session to every URI again (legacy era)."""
        for uri in self.uris:
            await self._send_subscribe(uri)

    async def _send_subscribe(self, uri: str) -> None:
        session = self.current()
        if session is None or not can_subscribe(session):
            return
        if session.era == "legacy":
            with contextlib.suppress(UpstreamError):
                await session.request(
                    "resources/subscribe", {"uri": uri}, timeout=self.call_timeout
                )


def can_subscribe(session: UpstreamSession) -> bool:
    return bool(session.capabilities.get("resources", {}).get("subscribe"))


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background task's exception as seen (the owner decides what it means)."""
    if not task.cancelled():
        task.exception()
