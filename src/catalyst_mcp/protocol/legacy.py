"""Legacy-era sessions (2024-11-05 … 2025-11-25): the state an ``initialize`` creates.

A session remembers the negotiated version, the client's capabilities and log level, its resource
subscriptions, the requests it has in flight (so ``notifications/cancelled`` can stop them), the
requests we sent it (sampling, elicitation, roots) awaiting its answer, and an outbox of messages
not tied to any request (list changes, resource updates), drained by its GET or SSE stream.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from catalyst_mcp.context import ANONYMOUS, Emitter, Identity
from catalyst_mcp.errors import CatalystError, InvalidParams
from catalyst_mcp.protocol.jsonrpc import Message, RequestId
from catalyst_mcp.protocol.versions import LATEST_LEGACY, LEGACY_VERSIONS, LOG_LEVELS

__all__ = ["LegacySession", "SessionStore", "negotiate_version"]

log = logging.getLogger("catalyst.protocol")

OUTBOX_LIMIT = 1000
CLIENT_ANSWER_SECONDS = 600.0


def negotiate_version(requested: Any) -> str:
    """Echo a legacy version we support; otherwise offer our latest legacy version."""
    return requested if requested in LEGACY_VERSIONS else LATEST_LEGACY


class ClientRequestFailed(CatalystError):
    """The client answered our request with an error."""


class LegacySession:
    def __init__(self, session_id: str, version: str, params: dict[str, Any]) -> None:
        self.id = session_id
        # who opened it: only they may use it (each request is authenticated again)
        self.identity: Identity = ANONYMOUS
        self.adopt(version, params)
        # Until the client sets a level, forward everything the upstreams choose to log.
        self.log_level: str | None = "debug"
        self.last_seen = time.monotonic()
        self.subscriptions: set[str] = set()
        self.inflight: dict[RequestId, asyncio.Task[Any]] = {}
        self._cancelled: set[RequestId] = set()
        self._answers: dict[RequestId, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self.outbox: deque[Message] = deque()
        self._outbox_ready = asyncio.Event()
        self.closed = False
        # True while a GET (or SSE) stream drains the outbox; notifications wait only then.
        self.listening = False

    def adopt(self, version: str, params: dict[str, Any]) -> None:
        """Take the version and client details of an ``initialize``."""
        self.protocol_version = version
        capabilities = params.get("capabilities")
        self.client_capabilities: dict[str, Any] = (
            capabilities if isinstance(capabilities, dict) else {}
        )
        info = params.get("clientInfo")
        self.client_info: dict[str, Any] | None = info if isinstance(info, dict) else None

    # ---- messages not tied to a request ------------------------------------------------------

    def post(self, message: Message) -> None:
        """Queue a message for the session's stream (dropping the oldest when it is full)."""
        if len(self.outbox) >= OUTBOX_LIMIT:
            self.outbox.popleft()
            log.warning("session %s: outbox full, dropped the oldest message", self.id[:8])
        self.outbox.append(message)
        self._outbox_ready.set()

    async def next_message(self, timeout: float) -> Message | None:
        """The next queued message, or None after ``timeout`` seconds (time for a keep-alive)."""
        if not self.outbox:
            self._outbox_ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._outbox_ready.wait()
            except TimeoutError:
                return None
        return self.outbox.popleft() if self.outbox else None

    # ---- requests we send the client ---------------------------------------------------------

    async def ask(self, emit: Emitter, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send the client a request on ``emit`` and wait for its answer."""
        request_id = f"catalyst-{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = future
        try:
            await emit({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            async with asyncio.timeout(CLIENT_ANSWER_SECONDS):
                return await future
        except TimeoutError as exc:
            raise CatalystError(f"the client did not answer {method} in time") from exc
        finally:
            self._answers.pop(request_id, None)

    def answer(self, message: Message) -> bool:
        """Deliver the client's response to a request we sent; False if none is waiting."""
        future = self._answers.pop(message.get("id"), None)  # type: ignore[arg-type]
        if future is None or future.done():
            return False
        if isinstance(message.get("result"), dict):
            future.set_result(message["result"])
        else:
            error = message.get("error")
            text = error.get("message") if isinstance(error, dict) else None
            future.set_exception(ClientRequestFailed(str(text or "the client refused the request")))
        return True

    # ---- session methods ---------------------------------------------------------------------

    def set_level(self, params: dict[str, Any]) -> dict[str, Any]:
        level = params.get("level")
        if level not in LOG_LEVELS:
            raise InvalidParams(f"Invalid log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
        self.log_level = level
        return {}

    def cancel(self, params: dict[str, Any]) -> None:
        request_id = params.get("requestId")
        task = self.inflight.get(request_id)  # type: ignore[arg-type]
        if task is not None:
            self._cancelled.add(request_id)  # type: ignore[arg-type]
            task.cancel()

    def cancelled(self, request_id: RequestId) -> bool:
        """Whether the client cancelled this request (and forget that it did)."""
        if request_id in self._cancelled:
            self._cancelled.discard(request_id)
            return True
        return False

    def close(self) -> None:
        self.closed = True
        for task in self.inflight.values():
            task.cancel()
        for future in self._answers.values():
            if not future.done():
                future.set_exception(CatalystError("the session was closed"))
        self._outbox_ready.set()


class SessionStore:
    """Sessions by id, in this process. Idle sessions expire.

    ``on_remove`` runs for every session that ends, however it ends (DELETE, expiry, eviction,
    shutdown), so what it holds elsewhere (resource subscriptions) is released.
    """

    def __init__(self, idle_seconds: float, limit: int = 10_000) -> None:
        self.idle_seconds = idle_seconds
        self.limit = limit
        self._sessions: dict[str, LegacySession] = {}
        self.on_remove: Callable[[LegacySession], None] = lambda session: None

    def create(self, version: str, params: dict[str, Any]) -> LegacySession:
        self.sweep()
        if len(self._sessions) >= self.limit:
            idle = [s for s in self._sessions.values() if not s.inflight]
            if not idle:
                raise CatalystError("too many sessions are busy; try again later")
            self.remove(min(idle, key=lambda s: s.last_seen).id)
        session = LegacySession(secrets.token_hex(16), version, params)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> LegacySession | None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.last_seen = time.monotonic()
        return session

    def remove(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.close()
        self.on_remove(session)
        return True

    def sweep(self) -> None:
        cutoff = time.monotonic() - self.idle_seconds
        for session in [s for s in self._sessions.values() if s.last_seen < cutoff]:
            if not session.inflight:
                self.remove(session.id)

    def __iter__(self) -> Any:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)

    def close(self) -> None:
        for session_id in list(self._sessions):
            self.remove(session_id)
