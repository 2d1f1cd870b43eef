"""Legacy-era sessions (2024-11-05 … 2025-11-25): the state an ``initialize`` creates.

A session remembers the negotiated version, the client's capabilities and log level, its resource
subscriptions, the requests it has in flight (so ``notifications/cancelled`` can stop them), the
requests we sent it (sampling, elicitation, roots) awaiting its answer, and an outbox of messages
not tied to any request (list changes, resource updates), drained by its GET or SSE stream.

Anyone who can reach the endpoint can ``initialize``, so what a session costs is kept small
(what most sessions never use is made on first use) and the store is capped, in all and per
caller: a full store makes room by closing its least recently used idle session, and refuses
a new one only when every session under the cap is busy. Decision 012 has the numbers.

With ``redis.url`` set, streamable-HTTP sessions are :class:`SharedSession`: their state lives in
Redis and the store here is a cache of the ones this instance has seen; what needs another
instance (an answer to a request it sent, a cancellation, a subscription) goes through the
session's :class:`SessionRelay` (:mod:`catalyst_mcp.cluster`, decision 024).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from catalyst_mcp.context import ANONYMOUS, Emitter, Identity
from catalyst_mcp.errors import CatalystError, InvalidParams, SessionLimit
from catalyst_mcp.protocol.jsonrpc import Message, RequestId
from catalyst_mcp.protocol.versions import LATEST_LEGACY, LEGACY_VERSIONS, LOG_LEVELS

__all__ = ["LegacySession", "SessionRelay", "SessionStore", "SharedSession", "negotiate_version"]

log = logging.getLogger("catalyst.protocol")

OUTBOX_LIMIT = 1000
CLIENT_ANSWER_SECONDS = 600.0
NO_SUBSCRIPTIONS: frozenset[str] = frozenset()


def negotiate_version(requested: Any) -> str:
    """Echo a legacy version we support; otherwise offer our latest legacy version. (Our own
    string is kept, not the client's copy: one fewer object per session.)"""
    for version in LEGACY_VERSIONS:
        if requested == version:
            return version
    return LATEST_LEGACY


class ClientRequestFailed(CatalystError):
    """The client answered our request with an error."""


class LegacySession:
    __slots__ = (
        "_answers",
        "_asked",
        "_cancelled",
        "_outbox",
        "_outbox_ready",
        "client_capabilities",
        "client_info",
        "closed",
        "id",
        "identity",
        "inflight",
        "last_seen",
        "listening",
        "log_level",
        "protocol_version",
        "subscriptions",
    )

    def __init__(
        self, session_id: str, version: str, params: dict[str, Any], identity: Identity = ANONYMOUS
    ) -> None:
        self.id = session_id
        # who opened it: only they may use it (each request is authenticated again)
        self.identity = identity
        self.adopt(version, params)
        # Until the client sets a level, forward everything the upstreams choose to log.
        self.log_level: str | None = "debug"
        self.last_seen = time.monotonic()
        self.subscriptions: frozenset[str] | set[str] = NO_SUBSCRIPTIONS
        self.inflight: dict[RequestId, asyncio.Task[Any]] = {}
        # made on first use: most sessions never cancel, ask, or receive unrelated messages
        self._cancelled: set[RequestId] | None = None
        self._answers: dict[RequestId, asyncio.Future[dict[str, Any]]] | None = None
        self._asked = 0
        self._outbox: deque[Message] | None = None
        self._outbox_ready: asyncio.Event | None = None
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

    @property
    def busy(self) -> bool:
        """Whether the session is in use: a request in flight or a stream open. A busy session
        is never expired or evicted."""
        return bool(self.inflight) or self.listening

    def subscribe(self, uri: str) -> None:
        subscriptions = self.subscriptions
        if not isinstance(subscriptions, set):  # the shared empty one until now
            subscriptions = self.subscriptions = set(subscriptions)
        subscriptions.add(uri)

    def unsubscribe(self, uri: str) -> None:
        if isinstance(self.subscriptions, set):
            self.subscriptions.discard(uri)

    def release_subscriptions(self) -> frozenset[str] | set[str]:
        """Forget every subscription (the session ended); return what it held."""
        uris, self.subscriptions = self.subscriptions, NO_SUBSCRIPTIONS
        return uris

    # ---- messages not tied to a request ------------------------------------------------------

    @property
    def outbox(self) -> deque[Message] | tuple[()]:
        """The messages waiting for the session's stream, oldest first."""
        return self._outbox if self._outbox is not None else ()

    def post(self, message: Message) -> None:
        """Queue a message for the session's stream (dropping the oldest when it is full)."""
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = deque()
        if len(outbox) >= OUTBOX_LIMIT:
            outbox.popleft()
            log.warning("session %s: outbox full, dropped the oldest message", self.id[:8])
        outbox.append(message)
        if self._outbox_ready is not None:
            self._outbox_ready.set()

    async def next_message(self, timeout: float) -> Message | None:
        """The next queued message, or None after ``timeout`` seconds (time for a keep-alive)."""
        if not self._outbox:
            if self.closed:
                return None
            ready = self._outbox_ready
            if ready is None:
                ready = self._outbox_ready = asyncio.Event()
            ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await ready.wait()
            except TimeoutError:
                return None
        return self._outbox.popleft() if self._outbox else None

    # ---- requests we send the client ---------------------------------------------------------

    async def ask(self, emit: Emitter, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send the client a request on ``emit`` and wait for its answer."""
        self._asked += 1
        request_id = self._ask_id(self._asked)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        answers = self._answers
        if answers is None:
            answers = self._answers = {}
        answers[request_id] = future
        try:
            await emit({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            async with asyncio.timeout(CLIENT_ANSWER_SECONDS):
                return await future
        except TimeoutError as exc:
            raise CatalystError(f"the client did not answer {method} in time") from exc
        finally:
            answers.pop(request_id, None)

    def _ask_id(self, number: int) -> str:
        return f"catalyst-{number}"

    def answer(self, message: Message) -> bool:
        """Deliver the client's response to a request we sent; False if none is waiting."""
        answers = self._answers
        future = None if answers is None else answers.pop(message.get("id"), None)  # type: ignore[arg-type]
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

    def cancel(self, params: dict[str, Any]) -> bool:
        """Cancel the request ``params`` name, if it is in flight here (False: it is not)."""
        request_id = params.get("requestId")
        task = self.inflight.get(request_id)  # type: ignore[arg-type]
        if task is None:
            return False
        if self._cancelled is None:
            self._cancelled = set()
        self._cancelled.add(request_id)  # type: ignore[arg-type]
        task.cancel()
        return True

    def cancelled(self, request_id: RequestId) -> bool:
        """Whether the client cancelled this request (and forget that it did)."""
        if self._cancelled is not None and request_id in self._cancelled:
            self._cancelled.discard(request_id)
            return True
        return False

    def close(self) -> None:
        self.closed = True
        for task in self.inflight.values():
            task.cancel()
        for future in (self._answers or {}).values():
            if not future.done():
                future.set_exception(CatalystError("the session was closed"))
        if self._outbox_ready is not None:
            self._outbox_ready.set()


class SessionRelay(Protocol):
    """What a :class:`SharedSession` asks of the instances sharing it (implemented by
    :class:`catalyst_mcp.cluster.sessions.SharedSessions`)."""

    instance: str  # this instance's id

    async def answer(self, session: SharedSession, message: Message) -> None:
        """Take the client's answer to a request another instance sent it."""

    async def cancel(self, session: SharedSession, params: dict[str, Any]) -> None:
        """Cancel a request of the session in flight on another instance."""

    async def set_level(self, session: SharedSession, level: str) -> None:
        """Record the session's new log level for every instance."""

    async def subscribe(self, session: SharedSession, uri: str) -> None:
        """Subscribe the session to ``uri`` (InvalidParams past MAX_SUBSCRIPTIONS)."""

    async def unsubscribe(self, session: SharedSession, uri: str) -> None:
        """Drop the session's subscription to ``uri``."""

    async def claim(self, session: SharedSession) -> bool:
        """Relay the session's messages to this instance's stream (False: it has ended)."""

    async def release(self, session: SharedSession) -> None:
        """This instance's stream of the session closed."""

    async def end(self, session_id: str) -> bool:
        """End the session on every instance (False: there was none)."""

    async def forward(self, session: SharedSession, message: Message, identity: Identity) -> bool:
        """Pass a message of the HTTP+SSE transport to the instance holding the session's
        stream (False: none does)."""


class SharedSession(LegacySession):
    """A legacy session whose state lives in Redis, so any instance may serve it. This object
    is one instance's copy: its subscriptions are in Redis (the copy's stay empty); the
    requests it sends the client are numbered ``catalyst-<instance>-<n>``, so the answer,
    wherever it arrives, finds its way back here."""

    __slots__ = ("relay", "told")

    def __init__(
        self,
        session_id: str,
        version: str,
        params: dict[str, Any],
        identity: Identity,
        relay: SessionRelay,
    ) -> None:
        super().__init__(session_id, version, params, identity)
        self.relay = relay
        self.told = 0.0  # when this instance last told Redis it used the session (never yet)

    def _ask_id(self, number: int) -> str:
        return f"catalyst-{self.relay.instance}-{number}"


class SessionStore:
    """Sessions by id, in this process, least recently used first. Idle sessions expire.

    Two caps bound what ``initialize`` floods can hold: ``limit`` sessions in all and
    ``per_caller`` sessions per caller (an identity's subject; without authentication every
    client is the one anonymous caller). At a cap, :meth:`create` closes the least recently
    used idle session under it (idle: no request in flight, no open stream); when every one is
    busy it refuses with :class:`~catalyst_mcp.errors.SessionLimit`. A closed session's
    client gets 404 on its next request, the spec's signal to initialize again.

    ``on_remove`` runs for every session that ends, however it ends (DELETE, expiry, eviction,
    shutdown), so what it holds elsewhere (resource subscriptions) is released.
    """

    def __init__(self, idle_seconds: float, limit: int = 10_000, per_caller: int = 1_000) -> None:
        self.idle_seconds = idle_seconds
        self.limit = limit
        self.per_caller = per_caller
        # both in order of last use, oldest first
        self._sessions: OrderedDict[str, LegacySession] = OrderedDict()
        self._by_caller: dict[str, OrderedDict[str, LegacySession]] = {}
        self.on_remove: Callable[[LegacySession], None] = lambda session: None
        # for metrics: sessions closed to make room, initializes refused (at a cap)
        self.evicted = 0
        self.refused = 0

    def create(
        self, version: str, params: dict[str, Any], identity: Identity = ANONYMOUS
    ) -> LegacySession:
        """A new session of ``identity``; raises :class:`SessionLimit` when there is no room."""
        self.sweep()
        caller = identity.subject
        own = self._by_caller.get(caller)
        if own is not None and len(own) >= self.per_caller and not self._evict(own):
            self.refused += 1
            raise SessionLimit(
                f"Too many sessions: {caller!r} has {len(own)} legacy sessions open, the most "
                f"one caller may have (gateway.max_legacy_sessions_per_caller), and all are "
                "busy; end sessions you no longer use (HTTP DELETE) or retry when a request "
                "finishes",
                status=429,
                data={"cap": "per_caller", "limit": self.per_caller},
            )
        if len(self._sessions) >= self.limit and not self._evict(self._sessions):
            self.refused += 1
            raise SessionLimit(
                f"Too many sessions: the gateway holds {len(self._sessions)} legacy sessions, "
                "its limit (gateway.max_legacy_sessions), and all are busy; retry later",
                status=503,
                data={"cap": "global", "limit": self.limit},
            )
        session = LegacySession(secrets.token_hex(16), version, params, identity)
        self._sessions[session.id] = session
        if own is None:
            own = self._by_caller[caller] = OrderedDict()
        own[session.id] = session
        return session

    def keep(self, session: LegacySession) -> LegacySession:
        """Keep ``session`` (made elsewhere: a shared session another instance created, or
        this one created in Redis). Never refused: the caps only bound how many such copies
        are kept, by closing idle ones (which forgets the copy, not the shared session)."""
        self.sweep()
        caller = session.identity.subject
        own = self._by_caller.get(caller)
        if own is not None and len(own) >= self.per_caller:
            self._evict(own, counted=False)
        if len(self._sessions) >= self.limit:
            self._evict(self._sessions, counted=False)
        self._sessions[session.id] = session
        if own is None:
            own = self._by_caller[caller] = OrderedDict()
        own[session.id] = session
        return session

    def peek(self, session_id: str) -> LegacySession | None:
        """The session, if held here, without counting this as its use."""
        return self._sessions.get(session_id)

    def _evict(self, sessions: OrderedDict[str, LegacySession], *, counted: bool = True) -> bool:
        """Close the least recently used idle session of ``sessions``; False if all are busy.
        (``counted``: in the metrics; a shared session's copy forgotten here is not.)"""
        for session in sessions.values():
            if not session.busy:
                log.info(
                    "session %s closed to make room (a session cap is reached)", session.id[:8]
                )
                self.remove(session.id)
                self.evicted += counted
                return True
        return False

    def get(self, session_id: str) -> LegacySession | None:
        session = self._sessions.get(session_id)
        if session is not None:
            session.last_seen = time.monotonic()
            self._sessions.move_to_end(session_id)
            self._by_caller[session.identity.subject].move_to_end(session_id)
        return session

    def remove(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        caller = session.identity.subject
        own = self._by_caller[caller]
        del own[session_id]
        if not own:
            del self._by_caller[caller]
        session.close()
        self.on_remove(session)
        return True

    def sweep(self) -> None:
        """Close sessions idle longer than ``idle_seconds`` (busy ones stay)."""
        cutoff = time.monotonic() - self.idle_seconds
        expired: list[str] = []
        for session in self._sessions.values():
            if session.last_seen >= cutoff:
                break  # in order of last use: the rest are newer
            if not session.busy:
                expired.append(session.id)
        for session_id in expired:
            self.remove(session_id)

    def count(self, identity: Identity) -> int:
        """How many sessions ``identity``'s caller holds."""
        own = self._by_caller.get(identity.subject)
        return 0 if own is None else len(own)

    def __iter__(self) -> Iterator[LegacySession]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)

    def close(self) -> None:
        for session_id in list(self._sessions):
            self.remove(session_id)
